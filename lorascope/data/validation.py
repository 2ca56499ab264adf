"""Validate prepared instruction data with the Great Expectations suite; bad data stops the
run before training, with a report naming each failed rule and the rows that broke it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorascope import warehouse
from lorascope.config import RunConfig
from lorascope.data.prepare import PREPARATION_FILE, preparation_markdown
from lorascope.data.rules import build_validation_frame, tokenizer_for
from lorascope.data.sources import load_splits
from lorascope.errors import LorascopeError
from lorascope.expectations.instruction_data import ValidationReport, validate_instruction_data
from lorascope.runs import RunContext


class DataValidationFailed(LorascopeError, RuntimeError):
    """The data broke expectations; deterministic, so never retried."""

    exit_code = 4


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
    report, markdown = validate_folder(context.paths.data, config, tokenizer, progress)
    warehouse.replace_rows(context.warehouse, "validations",
                           [{"run_id": context.run_id, **row} for row in report.rows()],
                           run_id=context.run_id)
    context.paths.validation_report.write_text(markdown)
    return report, markdown


def check_validation(report: ValidationReport, context: RunContext) -> None:
    """Raise DataValidationFailed, naming the broken rules and the first row, if any failed."""
    failed = report.failures()
    if not failed:
        return
    first = next((o.examples[0] for o in failed if o.examples), None)
    where = f" first at {first['file']}:{first['line']} ({first['rule']})" if first else ""
    names = ", ".join(o.rule for o in failed)
    raise DataValidationFailed(
        f"data validation failed: {len(failed)} expectation(s) ({names});{where}. "
        f"See {context.paths.validation_report} or "
        f"`lorascope sql \"select * from validations where run_id='{context.run_id}'\"`"
    )
