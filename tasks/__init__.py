"""Prefect tasks: each a thin wrapper over one library step, declaring its retries and cache
policy where a reader looks for them and turning the step's progress into Prefect logs and
artifacts. No logic of their own."""
