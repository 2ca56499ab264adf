"""Train the run's adapters in a supervised child process; a retry resumes from the newest
valid checkpoint. Also the Prefect automation that shows a killed flow run as Crashed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.automations import Automation
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.settings import get_current_settings

from lorascope.errors import LorascopeError
from lorascope.runs import RunContext
from lorascope.tasks.runs import failure_of
from lorascope.training.steps import is_resumable
from lorascope.training.supervisor import TrainingProcessDied, train_supervised
from lorascope.training.trainer import TrainResult

CRASH_AUTOMATION = "lorascope: crash flow runs whose heartbeats stopped"


def _retry_if_resumable(task: Any, task_run: Any, state: Any) -> bool:
    # A killed training process resumes from its checkpoint, as may a transient I/O error;
    # a LorascopeError (config, data, model, NaN loss, resume mismatch) would fail again.
    error = failure_of(state)
    return isinstance(error, TrainingProcessDied) or (
        is_resumable(error) and not isinstance(error, LorascopeError))


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

    result = train_supervised(context, on_metrics=show, log=logger.info)
    if result.resumed_from_step == total:
        logger.info("training already complete (step %d of %d): nothing trained, adapters in "
                    "%s reused", total, total, result.adapter_dir)
    else:
        logger.info("adapters in %s (resumed from step %d)", result.adapter_dir,
                    result.resumed_from_step)
    return result


def ensure_crash_automation(within_seconds: int | None = None) -> Automation:
    """Create or update, on the server PREFECT_API_URL names, the automation Prefect's docs
    give for zombie flow runs: a flow run with no heartbeat for `within_seconds` (default two
    heartbeat periods + 30 s, PREFECT_FLOWS_HEARTBEAT_FREQUENCY) becomes Crashed."""
    frequency = get_current_settings().flows.heartbeat_frequency or 180
    automation = Automation(name=CRASH_AUTOMATION, trigger=EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed"},
        match={"prefect.resource.id": ["prefect.flow-run.*"]},
        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
        within=timedelta(seconds=within_seconds or 2 * frequency + 30),
    ), actions=[ChangeFlowRunState(
        state=StateType.CRASHED,
        message="no heartbeat from the flow run's process: it was killed or its machine died",
    )])
    try:
        automation.id = Automation.read(name=CRASH_AUTOMATION).id
    except ValueError:  # not there yet
        return automation.create()
    automation.update()
    return automation
