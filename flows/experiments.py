"""Experiments as a flow: the pipeline once per value of one config parameter, compared in SQL.

    lorascope sweep configs/demo.yaml lora.rank 4 8 16          # rank sensitivity
    lorascope sweep configs/demo.yaml data.source builtin:sciq-format my_domain/   # domains
    lorascope sweep configs/demo.yaml lora.rank 4 8 --work-pool lorascope   # on the pool's workers
    lorascope experiment domains configs/demo.yaml configs/demo-commonsense.yaml   # transfer

Each value is an ordinary run, resumable like any other: a subflow in this process, or with a
work pool its own flow run of the pool's pipeline deployment (prefect.yaml), so the pool's
workers (on one machine or several) run the members side by side. See lorascope.experiments
for how members are named and recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.deployments import run_deployment

from lorascope.config import load_config
from lorascope.deployments import check_paths, notify_failure
from lorascope.experiments import (
    DOMAIN,
    MemberFailed,
    check_values,
    domain_experiment_id,
    experiment_id_for,
    load_domain_configs,
    member_name,
    member_overrides,
    transfer_overrides,
)
from lorascope.flows.evaluation import reevaluate
from lorascope.flows.pipeline import pipeline, started_by_deployment
from lorascope.paths import lorascope_home
from lorascope.runs import run_id_for
from lorascope.tasks.reporting import (
    domain_report_task,
    experiment_report_task,
    record_member_task,
)

DEPLOYMENT = "pipeline"  # the pipeline's deployment in prefect.yaml
POLL_SECONDS = 5


@flow(name="lorascope-sweep", flow_run_name="sweep/{parameter}", log_prints=True,
      on_failure=[notify_failure], on_crashed=[notify_failure])
def sweep(config_path: str, parameter: str, values: list[Any], home: str | None = None,
          work_pool: str | None = None) -> str:
    """Run the pipeline for each value of `parameter`; returns the experiment id. With
    `work_pool`, each member is a flow run of the pipeline deployment on that pool, all
    submitted at once and awaited.

    Args:
        config_path: the base run config YAML, e.g. configs/demo.yaml
        parameter: dotted config key to vary, e.g. lora.rank or data.source
        values: the values to try, e.g. [4, 8, 16]
        home: state folder (warehouse, runs); default $LORASCOPE_HOME
        work_pool: run the members on this work pool's workers (its `pipeline` deployment);
            empty: one after another in this flow run
    """
    if started_by_deployment():
        check_paths(config_path, home)
    state_home = Path(home) if home else lorascope_home()
    check_values(config_path, parameter, values)
    config = load_config(config_path)
    experiment_id = experiment_id_for(config.name, config.config_hash(), parameter, values)
    logger = get_run_logger()
    members = [member_overrides(parameter, value, member_name(config.name, parameter, value))
               for value in values]
    if work_pool:
        run_ids = run_on_pool(pipeline_deployment_on(work_pool), config_path, members)
    else:
        run_ids = []
        for value, overrides in zip(values, members, strict=True):
            logger.info("%s: %s = %s", experiment_id, parameter, value)
            run_ids.append(pipeline(config_path, overrides, home=str(state_home)))
    for position, (value, overrides, run_id) in enumerate(
            zip(values, members, run_ids, strict=True)):
        record_member_task(state_home, experiment_id, run_id, parameter, position, value,
                           config_path, overrides)
    report = experiment_report_task(state_home, experiment_id, parameter)
    logger.info("experiment report: %s", report)
    return experiment_id


@flow(name="lorascope-domains", flow_run_name="domains", log_prints=True,
      on_failure=[notify_failure], on_crashed=[notify_failure])
def domain_experiment(config_paths: list[str], home: str | None = None) -> str:
    """Tune one run per config, each on its own domain; evaluate every run on every
    member's domain (its eval prompts and goal); report the matrix. Returns the experiment
    id. Each run and evaluation is an ordinary one, so a re-run continues where it stopped.

    Args:
        config_paths: one run config YAML per domain, e.g. configs/demo.yaml and
            configs/demo-commonsense.yaml; the config's name names its domain
        home: state folder (warehouse, runs); default $LORASCOPE_HOME
    """
    if started_by_deployment():
        for config_path in config_paths:
            check_paths(config_path, home)
    state_home = str(Path(home) if home else lorascope_home())
    configs = load_domain_configs(config_paths)
    experiment_id = domain_experiment_id(configs)
    logger = get_run_logger()
    run_ids = []
    for config_path, config in zip(config_paths, configs, strict=True):
        logger.info("%s: tuning on %s (%s)", experiment_id, config.name, config.data.source)
        run_ids.append(pipeline(config_path, home=state_home))
    for run_id, trained in zip(run_ids, configs, strict=True):
        for evaluated in configs:
            if evaluated is not trained:
                logger.info("%s: %s evaluated on %s", experiment_id, trained.name,
                            evaluated.name)
                reevaluate(run_id, transfer_overrides(evaluated), home=state_home)
    for position, (config_path, config, run_id) in enumerate(
            zip(config_paths, configs, run_ids, strict=True)):
        record_member_task(Path(state_home), experiment_id, run_id, DOMAIN, position,
                           config.name, config_path, [])
    report = domain_report_task(Path(state_home), experiment_id, [c.name for c in configs])
    logger.info("experiment report: %s", report)
    return experiment_id


def pipeline_deployment_on(work_pool: str) -> str:
    """`lorascope-pipeline/pipeline`, once checked to be deployed on `work_pool`
    (prefect.yaml's `pipeline`, deployed with `prefect deploy --all`)."""
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[pipeline.name])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool])))
    if not deployments:
        raise MemberFailed(
            f"work pool {work_pool}: no deployment {pipeline.name}/{DEPLOYMENT} on it; deploy "
            "prefect.yaml's with `prefect deploy --all` and start a worker with "
            f"`prefect worker start --pool {work_pool}`")
    return f"{pipeline.name}/{DEPLOYMENT}"


def run_on_pool(deployment: str, config_path: str, members: list[list[str]]) -> list[str]:
    """Submit every member as a flow run of `deployment` (named after its run id), wait for
    all of them, and return their run ids; a member that did not complete fails the sweep
    (after the others finished, so one bad value does not waste the night's other runs)."""
    logger = get_run_logger()
    config_file = str(Path(config_path).resolve())
    run_ids = [run_id_for(load_config(config_file, overrides)) for overrides in members]
    submitted = [
        run_deployment(deployment, parameters={"config_path": config_file, "overrides": o},
                       flow_run_name=run_id, timeout=0)
        for o, run_id in zip(members, run_ids, strict=True)
    ]
    logger.info("submitted %d runs to %s: %s", len(submitted), deployment, ", ".join(run_ids))
    pending = {flow_run.id: run_id for flow_run, run_id in zip(submitted, run_ids, strict=True)}
    failed = []
    with get_client(sync_client=True) as client:
        while pending:
            time.sleep(POLL_SECONDS)
            for flow_run_id, run_id in list(pending.items()):
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.is_final():
                    logger.info("%s: %s", run_id, state.name)
                    del pending[flow_run_id]
                    if not state.is_completed():
                        failed.append(f"{run_id} {state.name}: {state.message}")
    if failed:
        raise MemberFailed("sweep members did not complete: " + "; ".join(failed))
    return run_ids
