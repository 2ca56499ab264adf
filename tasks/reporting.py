"""Write reports from the warehouse, as files and as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from lorascope.experiments import record_member, write_domain_report, write_experiment_report
from lorascope.report import write_run_report
from lorascope.report_html import summary_markdown, write_experiment_html
from lorascope.runs import RunContext


@task(name="report", cache_policy=NO_CACHE)
def report_task(context: RunContext) -> Path:
    path = write_run_report(context)
    create_markdown_artifact(path.read_text(), key="run-report",
                             description=f"lorascope report for {context.run_id}")
    # The findings and the forest plot (a PNG data URI, which the UI's Markdown shows).
    create_markdown_artifact(summary_markdown(context.warehouse, context.evaluation_id),
                             key="run-summary", description=f"what tuning changed: "
                             f"{context.run_id}; the full page is {path.with_suffix('.html')}")
    return path


@task(name="record-experiment-member", cache_policy=NO_CACHE)
def record_member_task(home: Path, experiment_id: str, run_id: str, parameter: str,
                       position: int, value: Any, config_path: str, overrides: list[str]) -> None:
    record_member(home, experiment_id, run_id, parameter, position, value, config_path,
                  overrides)


@task(name="experiment-report", cache_policy=NO_CACHE)
def experiment_report_task(home: Path, experiment_id: str, parameter: str) -> Path:
    path = write_experiment_report(home, experiment_id, parameter)
    write_experiment_html(home, experiment_id)
    create_markdown_artifact(path.read_text(), key="experiment-report",
                             description=f"lorascope experiment {experiment_id}")
    return path


@task(name="domain-report", cache_policy=NO_CACHE)
def domain_report_task(home: Path, experiment_id: str, domains: list[str]) -> Path:
    path = write_domain_report(home, experiment_id, domains)
    write_experiment_html(home, experiment_id)
    create_markdown_artifact(path.read_text(), key="experiment-report",
                             description=f"lorascope domain experiment {experiment_id}")
    return path
