"""Validate the instruction data with the Great Expectations suite; bad data stops the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

import warehouse
from expectations.instruction_data import ValidationReport, validate_instruction_data
from lorascope.chat import ensure_chat_template
from lorascope.context import RunContext
from lorascope.data import build_validation_frame, load_splits


class DataValidationFailed(RuntimeError):
    """The data broke expectations; deterministic, so never retried."""


def tokenizer_for(model_path: Path, chat_template: str | None) -> Any:
    """The model's tokenizer alone (validation needs token counts, not weights)."""
    from transformers import AutoTokenizer

    return ensure_chat_template(AutoTokenizer.from_pretrained(str(model_path)), chat_template)


def validate_run_data(context: RunContext) -> ValidationReport:
    """Run the suite, land its results in `validations` and the run folder, return the report."""
    config = context.config
    frame = build_validation_frame(
        load_splits(context.data_dir),
        tokenizer_for(context.model_path, config.model.chat_template),
    )
    report = validate_instruction_data(frame, config.data, config.train.batch_size)
    warehouse.delete_rows(context.warehouse, "validations", context.run_id)
    warehouse.write_rows(
        context.warehouse, "validations",
        [{"run_id": context.run_id, **row} for row in report.rows()],
    )
    (context.run_dir / "validation.md").write_text(report.to_markdown())
    return report


@task(name="validate-data", cache_policy=NO_CACHE)
def validate_task(context: RunContext) -> None:
    report = validate_run_data(context)
    create_markdown_artifact(
        report.to_markdown(), key="data-validation",
        description=f"Great Expectations results for {context.run_id}",
    )
    failed = [r for r in report.results if not r.success]
    if failed:
        names = ", ".join(f"{r.expectation}({r.column})" if r.column else r.expectation for r in failed)
        raise DataValidationFailed(
            f"data validation failed ({len(failed)} expectation(s): {names}); "
            f"see {context.run_dir / 'validation.md'} or "
            f"`lorascope sql \"select * from validations where run_id='{context.run_id}'\"`"
        )
    get_run_logger().info("data validation passed: %d expectations", len(report.results))
