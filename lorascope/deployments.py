"""Runs started from outside (the Prefect UI, a schedule, a sweep on a work pool): their
parameters checked before anything runs, their flow runs named after the run, and a line
written when one fails or its gate trips.

A deployment's parameters come from whoever can reach the Prefect UI, so its paths are
confined to `$LORASCOPE_HOME` and the project (the worker's working directory, the checkout
prefect.yaml's pull step moves to); overrides are checked by loading the config with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lorascope.config import ConfigError, RunConfig, load_config
from lorascope.errors import exit_code
from lorascope.paths import lorascope_home
from lorascope.runs import run_id_for, utc_now


class ParameterError(ConfigError):
    """A deployment parameter that points outside what a deployment may touch."""


def confined(parameter: str, value: str, roots: dict[str, Path]) -> Path:
    """`value` as an absolute path (relative to the project) if it lies inside one of
    `roots` (named for the message); otherwise a ParameterError naming the parameter."""
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if any(path.is_relative_to(root.resolve()) for root in roots.values()):
        return path
    allowed = " or ".join(f"{name} ({root})" for name, root in roots.items())
    raise ParameterError(f"parameter {parameter}: {value} is outside {allowed}")


def check_paths(config_path: str, home: str | None) -> None:
    """A deployment's paths: `home` inside $LORASCOPE_HOME, `config_path` inside it or the
    project."""
    state_home = lorascope_home()
    if home is not None:
        confined("home", home, {"$LORASCOPE_HOME": state_home})
    confined("config_path", config_path, {"$LORASCOPE_HOME": state_home, "the project": Path.cwd()})


def check_run_parameters(config_path: str, overrides: list[str] | None,
                         home: str | None) -> RunConfig:
    """A deployment's pipeline parameters, checked: its paths, and the config valid with the
    overrides."""
    check_paths(config_path, home)
    return load_config(config_path, overrides)


def run_name(parameters: dict[str, Any]) -> str:
    """The flow-run name of a pipeline run: its run id (config name + training hash), or
    `pipeline/<config file>` when the config does not load (its flow run then fails and says
    why)."""
    config_path = str(parameters.get("config_path", ""))
    try:
        return run_id_for(load_config(config_path, parameters.get("overrides")))
    except (ConfigError, OSError):
        return f"pipeline/{Path(config_path).stem}"


def run_slot(run_id: str) -> str:
    """The name of the Prefect concurrency limit (one slot) that queues a run's writers."""
    return f"lorascope-run-{run_id}"


def notifications_path(home: Path | None = None) -> Path:
    return (home or lorascope_home()) / "notifications.log"


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """A flow's on_failure/on_crashed hook: append one JSON line (flow, run, exit code,
    message) to notifications.log in the run's home, the notification that needs no account.
    Exit code 3 is a tripped regression gate; a Prefect automation on failed lorascope flow
    runs can forward the same to Slack or e-mail (docs/operations.md). A deployment's run
    writes to $LORASCOPE_HOME whatever its `home` parameter says (it may have been refused)."""
    error = state.result(raise_on_failure=False) if state.is_failed() else None
    home = None if flow_run.deployment_id else flow_run.parameters.get("home")
    record = {
        "at": utc_now().isoformat(), "flow": flow.name, "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id), "state": state.name,
        "exit_code": exit_code(error) if isinstance(error, BaseException) else 1,
        "message": state.message or "",
    }
    path = notifications_path(Path(home) if home else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")
