"""Validate the run's prepared data; bad data stops the flow before training."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from lorascope.data.validation import check_validation, validate_run_data
from lorascope.runs import RunContext


@task(name="validate-data", cache_policy=NO_CACHE)
def validate_task(context: RunContext) -> None:
    artifact = create_progress_artifact(0.0, description=f"tokenizing {context.run_id}")
    report, markdown = validate_run_data(
        context, lambda done, total: update_progress_artifact(artifact, 100.0 * done / total)
    )
    create_markdown_artifact(markdown, key="data-validation",
                             description=f"Great Expectations results for {context.run_id}")
    check_validation(report, context)
    get_run_logger().info("data validation passed: %d expectations", len(report.results))
