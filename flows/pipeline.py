"""The lorascope pipeline: start → validate → train → evaluate (generate, score, capability,
lm-eval, attention, gate, report) → finish. Every step lands its results in the warehouse as
it goes; re-running a config resumes its run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, serve
from prefect.schedules import Cron

from lorascope.blas import describe_blas
from lorascope.config import load_config
from lorascope.flows.evaluation import evaluate_run, finished, reevaluate
from lorascope.paths import RunPaths, lorascope_home
from lorascope.run_lock import run_lock
from lorascope.runs import run_id_for
from lorascope.tasks.data import validate_task
from lorascope.tasks.runs import start_task
from lorascope.tasks.training import train_task


@flow(name="lorascope-pipeline", log_prints=True)
def pipeline(config_path: str, overrides: list[str] | None = None, home: str | None = None) -> str:
    """Tune a model on instruction data and measure what changed; returns the run id.

    Re-running with the same config resumes its run: training from the newest checkpoint,
    generation from the first prompt without an answer in the warehouse. Changing only eval
    settings re-evaluates the trained run (a new evaluation) without training. One process
    writes a run at a time (lorascope.run_lock).
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
    serve(deployment_for(config_path, cron, timezone), reevaluation_deployment())
