"""The lorascope pipeline: validate → train → generate → score → attention → report.

Every step lands its results in the warehouse as it goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.schedules import Cron

from lorascope.blas import describe_blas
from lorascope.config import load_config
from lorascope.home import lorascope_home
from tasks.attention import attention_task
from tasks.evaluate import VARIANTS, capability_task, generate_task, harness_task, score_task
from tasks.prepare import finish_task, prepare_task
from tasks.report import report_task
from tasks.train import train_task
from tasks.validate import validate_task


@flow(name="lorascope-pipeline", log_prints=True)
def pipeline(config_path: str, overrides: list[str] | None = None, home: str | None = None) -> str:
    """Tune a model on instruction data and measure what changed; returns the run id.

    Re-running with the same config resumes its run: training from the newest checkpoint,
    generation from the first prompt without an answer in the warehouse.
    """
    get_run_logger().info(describe_blas())
    config = load_config(config_path, overrides)
    context = prepare_task(config, Path(home) if home else lorascope_home())
    try:
        validate_task(context)
        train_task(context)
        for variant in VARIANTS:
            generate_task(context, variant)
        score_task(context)
        for variant in VARIANTS:
            capability_task(context, variant)
        if config.eval.harness_tasks:
            for variant in VARIANTS:
                harness_task(context, variant)
        if config.eval.attention_prompts:
            attention_task(context)
        report = report_task(context)
    except BaseException as error:
        finish_task(context, "failed", f"{type(error).__name__}: {error}")
        raise
    finish_task(context, "completed")
    get_run_logger().info("report: %s", report)
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
