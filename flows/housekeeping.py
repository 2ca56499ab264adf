"""Prefect's own records for `lorascope gc`: finished flow runs older than a cutoff, listed and
deleted through Prefect's client on the server PREFECT_API_URL names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL

FINISHED_STATES = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED,
                   StateType.CANCELLED]


def prefect_server() -> str | None:
    """The configured Prefect API URL; None when flows run on a temporary local server."""
    return PREFECT_API_URL.value()


def old_flow_runs(older_than_days: float) -> list[FlowRun]:
    """Flow runs in a final state that started more than `older_than_days` days ago."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
    query = FlowRunFilter(start_time=FlowRunFilterStartTime(before_=cutoff),
                          state=FlowRunFilterState(type=FlowRunFilterStateType(
                              any_=FINISHED_STATES)))
    found: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while batch := client.read_flow_runs(flow_run_filter=query, limit=200,
                                             offset=len(found)):
            found += batch
    return found


def delete_flow_runs(flow_runs: list[FlowRun]) -> int:
    with get_client(sync_client=True) as client:
        for flow_run in flow_runs:
            client.delete_flow_run(flow_run.id)
    return len(flow_runs)
