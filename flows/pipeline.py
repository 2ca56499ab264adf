"""The lorascope pipeline: start → validate → train → evaluate (generate, score, capability,
lm-eval, attention, gate, report) → finish. Every step lands its results in the warehouse as
it goes; re-running a config resumes its run."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists
from prefect.runtime import flow_run
from prefect.schedules import Cron

from lorascope.blas import describe_blas
from lorascope.config import load_config
from lorascope.deployments import check_run_parameters, notify_failure, run_name, run_slot
from lorascope.flows.evaluation import evaluate_run, finished, reevaluate
from lorascope.paths import RunPaths, lorascope_home
from lorascope.run_lock import run_lock
from lorascope.runs import run_id_for
from lorascope.tasks.data import validate_task
from lorascope.tasks.runs import start_task
from lorascope.tasks.training import ensure_crash_automation, train_task


def started_by_deployment() -> bool:
    """Is this flow run one a deployment created (not a direct call or a subflow)?"""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def checked_and_queued(body: Callable[..., str]) -> Callable[..., str]:
    """For a flow run a deployment started (the UI, a schedule, a sweep on a work pool):
    check its parameters before anything runs (lorascope.deployments), then wait for the
    run's one concurrency slot, so a second writer of the same run queues instead of failing
    on the run lock. A direct call (`lorascope run`, tests) runs the body as it is."""

    @functools.wraps(body)
    def guarded(config_path: str, overrides: list[str] | None = None,
                home: str | None = None) -> str:
        if not started_by_deployment():
            return body(config_path, overrides, home)
        slot = run_slot(run_id_for(check_run_parameters(config_path, overrides, home)))
        # Another writer of the run may have created the limit just now.
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
            client.upsert_global_concurrency_limit_by_name(slot, 1)
        get_run_logger().info("taking %s: a flow run writing the same run waits for it", slot)
        with concurrency(slot, occupy=1, strict=True):
            return body(config_path, overrides, home)

    return guarded


@flow(name="lorascope-pipeline", flow_run_name=lambda: run_name(flow_run.parameters),
      on_failure=[notify_failure], on_crashed=[notify_failure], log_prints=True)
@checked_and_queued
def pipeline(config_path: str, overrides: list[str] | None = None, home: str | None = None) -> str:
    """Tune a model on instruction data and measure what changed; returns the run id.

    Re-running with the same config resumes its run: training from the newest checkpoint,
    generation from the first prompt without an answer in the warehouse. Changing only eval
    settings re-evaluates the trained run (a new evaluation) without training. One process
    writes a run at a time (lorascope.run_lock).

    Args:
        config_path: run config YAML, e.g. configs/demo.yaml (from a deployment: inside the
            project or $LORASCOPE_HOME)
        overrides: config values to change, e.g. ["train.iters=20", "lora.rank=16"]; checked
            against the config's schema before anything runs
        home: state folder (warehouse, runs); default $LORASCOPE_HOME (from a deployment:
            inside it)
    """
    get_run_logger().info(describe_blas())
    config = load_config(config_path, overrides)
    state_home = Path(home) if home else lorascope_home()
    with run_lock(RunPaths.of(run_id_for(config), state_home).root, "lorascope run"):
        context = start_task(config, state_home)
        with finished(context):
            validate_task(context)
            train_task(context)
            evaluate_run(context)
    return context.run_id


def deployment_for(config_path: str, cron: str | None = None, timezone: str = "UTC") -> Any:
    """A deployment of the pipeline for one config, for `prefect.serve`: the Prefect UI can
    then start it (with other parameters if wanted), and `cron` runs it on a schedule, e.g.
    overnight training. Named after the config, so each config is one deployment."""
    config_file = Path(config_path).resolve()
    name = load_config(config_file).name  # also fails early on a bad config
    return pipeline.to_deployment(
        name=name,
        parameters={"config_path": str(config_file)},
        schedule=Cron(cron, timezone=timezone) if cron else None,
        description=f"lorascope pipeline for {config_file}",
        tags=["lorascope"],
        # One run of the config at a time; a second start waits in the queue.
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
    )


def reevaluation_deployment() -> Any:
    """A deployment of `reevaluate`: from the UI, evaluate a trained run again with other eval
    settings (run_id and overrides such as ["eval.max_tokens=256"] as parameters)."""
    return reevaluate.to_deployment(
        name="reevaluate", description="lorascope: evaluate a trained run again, no training",
        tags=["lorascope"])


def serve_pipeline(config_path: str, cron: str | None = None, timezone: str = "UTC") -> None:
    """Serve the config's deployment, and re-evaluation, until interrupted (`lorascope
    serve`)."""
    ensure_crash_automation()  # a flow run killed with its process shows Crashed, not Running
    serve(deployment_for(config_path, cron, timezone), reevaluation_deployment())
