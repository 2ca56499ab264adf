"""Experiments as a flow: the pipeline once per value of one config parameter, compared in SQL.

    lorascope sweep configs/demo.yaml lora.rank 4 8 16          # rank sensitivity
    lorascope sweep configs/demo.yaml data.source builtin:sciq-format my_domain/   # domains

Each value is an ordinary run (a subflow in the Prefect UI, resumable like any other); see
lorascope.experiments for how members are named and recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from lorascope.config import load_config
from lorascope.experiments import (
    check_values,
    experiment_id_for,
    member_name,
    member_overrides,
)
from lorascope.flows.pipeline import pipeline
from lorascope.paths import lorascope_home
from lorascope.tasks.reporting import experiment_report_task, record_member_task


@flow(name="lorascope-sweep", log_prints=True)
def sweep(config_path: str, parameter: str, values: list[Any], home: str | None = None) -> str:
    """Run the pipeline for each value of `parameter`; returns the experiment id."""
    state_home = Path(home) if home else lorascope_home()
    check_values(config_path, parameter, values)
    config = load_config(config_path)
    experiment_id = experiment_id_for(config.name, config.config_hash(), parameter, values)
    logger = get_run_logger()
    for position, value in enumerate(values):
        overrides = member_overrides(parameter, value, member_name(config.name, parameter, value))
        logger.info("%s: %s = %s", experiment_id, parameter, value)
        run_id = pipeline.with_options(flow_run_name=f"{parameter}={value}")(
            config_path, overrides, home=str(state_home))
        record_member_task(state_home, experiment_id, run_id, parameter, position, value,
                           config_path, overrides)
    report = experiment_report_task(state_home, experiment_id, parameter)
    logger.info("experiment report: %s", report)
    return experiment_id
