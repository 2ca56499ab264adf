"""The training step of a run: load the base, train (or resume) its adapters, land every
reported metric in the warehouse as it comes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorascope import warehouse
from lorascope.data.sources import load_splits
from lorascope.models.loader import load_model
from lorascope.runs import RunContext
from lorascope.training.trainer import TrainingError, TrainResult, train_adapters


def train_run(
    context: RunContext, on_metrics: Callable[[list[dict[str, Any]]], None],
    log: Callable[[str], None] = print, after_report: Callable[[int], None] | None = None,
) -> TrainResult:
    """`after_report(step)` runs after each reported step and its checkpoint (tests inject
    interruptions there)."""
    config = context.config
    model, tokenizer = load_model(context.model_path, config.model, home=context.home)
    splits = load_splits(context.paths.data)

    def land(rows: list[dict[str, Any]]) -> None:
        warehouse.write_rows(context.warehouse, "train_metrics",
                             [{"run_id": context.run_id, **row} for row in rows])
        on_metrics(rows)

    return train_adapters(
        model, tokenizer,
        splits["train"], splits["valid"],
        config, context.model_path, context.paths, context.code_version, context.data_hash,
        sink=land, log=log, after_report=after_report,
    )


def is_resumable(error: BaseException | None) -> bool:
    """Interruptions resume from a checkpoint; errors a person must fix (NaN loss, a config
    that no longer matches its checkpoints, bad data) would only fail again."""
    return not isinstance(error, TrainingError | ValueError)
