"""Train the run's adapters; a retry resumes from the newest valid checkpoint."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from lorascope.runs import RunContext
from lorascope.tasks.runs import failure_of
from lorascope.training.steps import is_resumable, train_run
from lorascope.training.trainer import TrainResult


def _retry_if_resumable(task: Any, task_run: Any, state: Any) -> bool:
    return is_resumable(failure_of(state))


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
    if result.resumed_from_step == total:
        logger.info("training already complete (step %d of %d): nothing trained, adapters in "
                    "%s reused", total, total, result.adapter_dir)
    else:
        logger.info("adapters in %s (resumed from step %d)", result.adapter_dir,
                    result.resumed_from_step)
    return result
