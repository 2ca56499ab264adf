"""Start and finish a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from lorascope.config import RunConfig
from lorascope.data.records import DataError
from lorascope.runs import RunContext, finish_run, open_run, start_adapter_run, start_run


def failure_of(state: Any) -> BaseException | None:
    """The exception a failed task run raised (Prefect's documented way: state.result())."""
    try:
        state.result()
    except BaseException as error:
        return error
    return None


def _retry_unless_bad_data(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(failure_of(state), DataError)  # the same data fails the same way


@task(name="start-run", cache_policy=NO_CACHE, retries=1,
      retry_condition_fn=_retry_unless_bad_data)
def start_task(config: RunConfig, home: Path) -> RunContext:
    try:
        return start_run(config, home, log=get_run_logger().info)
    except DataError as error:
        create_markdown_artifact(f"# Data could not be read\n\n`{error}`\n",
                                 key="data-validation", description="data preparation failed")
        raise


@task(name="start-adapter-run", cache_policy=NO_CACHE)
def start_adapter_task(config: RunConfig, adapter: Path, home: Path) -> RunContext:
    return start_adapter_run(config, adapter, home, log=get_run_logger().info)


@task(name="open-run", cache_policy=NO_CACHE)
def open_run_task(run_id: str, home: Path, overrides: list[str]) -> RunContext:
    return open_run(run_id, home, overrides)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_task(context: RunContext, status: str, error: str | None = None) -> None:
    finish_run(context, status, error)
