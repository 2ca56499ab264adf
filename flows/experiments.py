"""Experiments: the pipeline once per value of one config parameter, compared in SQL.

    lorascope sweep configs/demo.yaml lora.rank 4 8 16          # rank sensitivity
    lorascope sweep configs/demo.yaml data.source builtin:sciq-format my_domain/   # domains

Each value is an ordinary run (a subflow in the Prefect UI, resumable like any other), tied
to the experiment in the warehouse table `experiments`; the view `experiment_results` lines
up their goal and capability deltas. With `lora.alpha` set, scale = alpha / rank, so a rank
sweep also changes the scale (PEFT's convention); with `lora.scale` set it stays fixed
(mlx-lm's). The effective rank and scale of every member are recorded to keep that visible.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

import warehouse
from flows.pipeline import pipeline
from lorascope.config import load_config
from lorascope.home import lorascope_home, warehouse_path
from lorascope.report import Section, render_report
from lorascope.runinfo import utc_now


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


@task(name="record-experiment-member", cache_policy=NO_CACHE)
def record_member(home: Path, experiment_id: str, run_id: str, parameter: str, position: int,
                  value: Any, config_path: str, overrides: list[str]) -> None:
    config = load_config(config_path, overrides)
    warehouse.write_rows(warehouse_path(home), "experiments", [{
        "experiment_id": experiment_id, "run_id": run_id, "parameter": parameter,
        "position": position, "value": str(value), "lora_rank": config.lora.rank,
        "lora_scale": config.lora.effective_scale, "created_at": utc_now(),
    }])


def write_experiment_report(home: Path, experiment_id: str, parameter: str) -> Path:
    sql = ("select value, lora_rank, lora_scale, kind, subject, metric, base, tuned, delta, "
           "ci_low, ci_high from experiment_results where experiment_id = ? "
           "order by kind, subject, metric, position")
    columns, rows = warehouse.query(warehouse_path(home), sql, [experiment_id])
    section = Section(
        f"Results by {parameter}",
        "Tuning-goal deltas (tuned - base, per domain and metric) and capability deltas "
        "(accuracy, with the paired 95 % CI) of each member run.",
        columns, rows, sql.replace("?", f"'{experiment_id}'"),
    )
    text = render_report(f"lorascope experiment: {experiment_id}",
                         {"experiment": experiment_id, "parameter": parameter}, [section])
    path = home / "experiments" / experiment_id / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@flow(name="lorascope-sweep", log_prints=True)
def sweep(config_path: str, parameter: str, values: list[Any], home: str | None = None) -> str:
    """Run the pipeline for each value of `parameter`; returns the experiment id."""
    state_home = Path(home) if home else lorascope_home()
    config = load_config(config_path)
    for value in values:  # a bad parameter or value fails here, before any run starts
        load_config(config_path, member_overrides(parameter, value, config.name))
    experiment_id = experiment_id_for(config.name, config.config_hash(), parameter, values)
    logger = get_run_logger()
    for position, value in enumerate(values):
        overrides = member_overrides(parameter, value, member_name(config.name, parameter, value))
        logger.info("%s: %s = %s", experiment_id, parameter, value)
        run_id = pipeline.with_options(flow_run_name=f"{parameter}={value}")(
            config_path, overrides, home=str(state_home))
        record_member(state_home, experiment_id, run_id, parameter, position, value,
                      config_path, overrides)
    report = write_experiment_report(state_home, experiment_id, parameter)
    create_markdown_artifact(report.read_text(), key="experiment-report",
                             description=f"lorascope experiment {experiment_id}")
    logger.info("experiment report: %s", report)
    return experiment_id
