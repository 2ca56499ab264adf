"""Train the run's adapters; a retry resumes from the newest valid checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.context import RunContext
from lorascope.data import load_splits
from lorascope.models import load_model
from lorascope.training import TrainResult, train_adapters


def train_run(
    context: RunContext, on_metrics: Callable[[list[dict[str, Any]]], None],
    log: Callable[[str], None] = print,
) -> TrainResult:
    config = context.config
    model, tokenizer = load_model(
        context.model_path, quantize_bits=config.model.quantize_bits,
        quantize_group_size=config.model.quantize_group_size,
        chat_template=config.model.chat_template,
    )
    splits = load_splits(context.data_dir)

    def land(rows: list[dict[str, Any]]) -> None:
        warehouse.write_rows(context.warehouse, "train_metrics",
                             [{"run_id": context.run_id, **row} for row in rows])
        on_metrics(rows)

    return train_adapters(
        model, tokenizer,
        [r.messages for r in splits["train"]], [r.messages for r in splits["valid"]],
        config, context.model_path, context.run_dir, context.code_version, context.data_hash,
        sink=land, log=log,
    )


def _retry_if_resumable(task: Any, task_run: Any, state: Any) -> bool:
    # Interruptions resume from a checkpoint; errors a person must fix (NaN loss, a config
    # that no longer matches its checkpoints, bad data) would only fail again.
    from lorascope.training import TrainingError

    return not isinstance(state.data, (TrainingError, ValueError))


@task(name="train", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=_retry_if_resumable)
def train_task(context: RunContext) -> TrainResult:
    logger = get_run_logger()
    total = context.config.train.iters
    artifact = create_progress_artifact(0.0, description=f"training {context.run_id}")

    def show(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["split"] == "train":
                logger.info("step %d/%d train loss %.4f, %.0f tok/s", row["step"], total,
                            row["loss"], row["tokens_per_second"] or 0)
                update_progress_artifact(artifact, 100.0 * row["step"] / total)
            else:
                logger.info("step %d/%d valid loss %.4f", row["step"], total, row["loss"])

    result = train_run(context, on_metrics=show, log=logger.info)
    logger.info("adapters in %s (resumed from step %d)", result.adapter_dir,
                result.resumed_from_step)
    return result
