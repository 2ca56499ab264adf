"""Great Expectations suites that gate the pipeline's data."""
