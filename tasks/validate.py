"""Validate the prepared instruction data with the Great Expectations suite; bad data stops
the run before training, with a report naming each failed rule and the rows that broke it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

import warehouse
from expectations.instruction_data import ValidationReport, validate_instruction_data
from lorascope.config import RunConfig
from lorascope.context import RunContext
from lorascope.data import build_validation_frame, load_splits, tokenizer_for
from tasks.prepare import PREPARATION_FILE, preparation_markdown


class DataValidationFailed(RuntimeError):
    """The data broke expectations; deterministic, so never retried."""


def validate_folder(
    folder: Path, config: RunConfig, tokenizer: Any,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ValidationReport, str]:
    """Run the suite on a prepared data folder; the report and its Markdown (with the
    preparation summary when the folder has one)."""
    frame = build_validation_frame(load_splits(folder), tokenizer, progress)
    report = validate_instruction_data(frame, config.data, config.train.batch_size)
    markdown = "# Data validation\n\n"
    if (folder / PREPARATION_FILE).is_file():
        summary = json.loads((folder / PREPARATION_FILE).read_text())
        markdown += preparation_markdown(summary) + "\n"
    markdown += "## Expectations\n\n" + report.to_markdown()
    return report, markdown


def validate_run_data(
    context: RunContext, progress: Callable[[int, int], None] | None = None
) -> tuple[ValidationReport, str]:
    """Run the suite, land its results in `validations` and the run folder."""
    config = context.config
    tokenizer = tokenizer_for(context.model_path, config.model.chat_template)
    report, markdown = validate_folder(context.data_dir, config, tokenizer, progress)
    warehouse.delete_rows(context.warehouse, "validations", context.run_id)
    warehouse.write_rows(
        context.warehouse, "validations",
        [{"run_id": context.run_id, **row} for row in report.rows()],
    )
    (context.run_dir / "validation.md").write_text(markdown)
    return report, markdown


@task(name="validate-data", cache_policy=NO_CACHE)
def validate_task(context: RunContext) -> None:
    artifact = create_progress_artifact(0.0, description=f"tokenizing {context.run_id}")
    report, markdown = validate_run_data(
        context, lambda done, total: update_progress_artifact(artifact, 100.0 * done / total)
    )
    create_markdown_artifact(
        markdown, key="data-validation",
        description=f"Great Expectations results for {context.run_id}",
    )
    failed = report.failures()
    if failed:
        first = next((o.examples[0] for o in failed if o.examples), None)
        where = f" first at {first['file']}:{first['line']} ({first['rule']})" if first else ""
        names = ", ".join(o.rule for o in failed)
        raise DataValidationFailed(
            f"data validation failed: {len(failed)} expectation(s) ({names});{where}. "
            f"See {context.run_dir / 'validation.md'} or "
            f"`lorascope sql \"select * from validations where run_id='{context.run_id}'\"`"
        )
    get_run_logger().info("data validation passed: %d expectations", len(report.results))
