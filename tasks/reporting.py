"""Write reports from the warehouse, as files and as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from lorascope.experiments import record_member, write_experiment_report
from lorascope.report import write_run_report
from lorascope.runs import RunContext


@task(name="report", cache_policy=NO_CACHE)
def report_task(context: RunContext) -> Path:
    path = write_run_report(context)
    create_markdown_artifact(path.read_text(), key="run-report",
                             description=f"lorascope report for {context.run_id}")
    return path


@task(name="record-experiment-member", cache_policy=NO_CACHE)
def record_member_task(home: Path, experiment_id: str, run_id: str, parameter: str,
                       position: int, value: Any, config_path: str, overrides: list[str]) -> None:
    record_member(home, experiment_id, run_id, parameter, position, value, config_path,
                  overrides)


@task(name="experiment-report", cache_policy=NO_CACHE)
def experiment_report_task(home: Path, experiment_id: str, parameter: str) -> Path:
    path = write_experiment_report(home, experiment_id, parameter)
    create_markdown_artifact(path.read_text(), key="experiment-report",
                             description=f"lorascope experiment {experiment_id}")
    return path
