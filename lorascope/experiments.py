"""Experiments: the pipeline once per value of one config parameter, compared in SQL.

Each value is an ordinary run, tied to the experiment in the warehouse table `experiments`;
the view `experiment_results` lines up their goal and capability deltas. With `lora.alpha`
set, scale = alpha / rank, so a rank sweep also changes the scale (PEFT's convention); with
`lora.scale` set it stays fixed (mlx-lm's). The effective rank and scale of every member are
recorded to keep that visible.

On a work pool (`lorascope sweep ... --work-pool NAME`), members run as separate flow runs
on the pool's workers, which must share this `$LORASCOPE_HOME` (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from lorascope import warehouse
from lorascope.config import load_config
from lorascope.errors import LorascopeError
from lorascope.paths import experiments_dir, warehouse_path
from lorascope.report import query_section, render_report
from lorascope.runs import utc_now


class MemberFailed(LorascopeError):
    """A sweep member run on a work pool did not complete (or there was no pool to run on)."""


def experiment_id_for(config_name: str, config_hash: str, parameter: str, values: list) -> str:
    """Same base config, parameter and values: same experiment (re-running resumes it)."""
    digest = hashlib.sha256(json.dumps([config_hash, parameter, values]).encode()).hexdigest()
    return f"{config_name}-sweep-{parameter.rsplit('.', 1)[-1]}-{digest[:8]}"


def member_name(config_name: str, parameter: str, value: Any) -> str:
    """A readable run name per value, e.g. demo-rank16 or demo-source-my_domain."""
    leaf = parameter.rsplit(".", 1)[-1]
    if isinstance(value, int | float):
        return f"{config_name}-{leaf}{value}"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", Path(str(value)).name or str(value)).strip("_")
    return f"{config_name}-{leaf}-{slug}"


def member_overrides(parameter: str, value: Any, name: str) -> list[str]:
    # JSON is YAML: the override parser reads the value back with its type.
    return [f"{parameter}={json.dumps(value)}", f"name={name}"]


def check_values(config_path: str, parameter: str, values: list[Any]) -> None:
    """Load the config with every value, so a bad parameter or value fails before any run."""
    name = load_config(config_path).name
    for value in values:
        load_config(config_path, member_overrides(parameter, value, name))


def record_member(home: Path, experiment_id: str, run_id: str, parameter: str, position: int,
                  value: Any, config_path: str, overrides: list[str]) -> None:
    config = load_config(config_path, overrides)
    warehouse.write_rows(warehouse_path(home), "experiments", [{
        "experiment_id": experiment_id, "run_id": run_id, "parameter": parameter,
        "position": position, "value": str(value), "lora_rank": config.lora.rank,
        "lora_scale": config.lora.effective_scale, "created_at": utc_now(),
    }])


def write_experiment_report(home: Path, experiment_id: str, parameter: str) -> Path:
    section = query_section(
        warehouse_path(home), f"Results by {parameter}",
        "Tuning-goal deltas (tuned - base, per domain and metric) and capability deltas "
        "(accuracy, with the paired 95 % CI) of each member run.",
        "experiment_results", {"experiment_id": experiment_id},
    )
    text = render_report(f"lorascope experiment: {experiment_id}",
                         {"experiment": experiment_id, "parameter": parameter}, [section])
    path = experiments_dir(home) / experiment_id / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
