"""Resolve the model, data and eval prompts of a run; record the run as started."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.builtin_data import resolve_data_source, resolve_eval_prompts
from lorascope.config import RunConfig, dump_config
from lorascope.context import RunContext
from lorascope.data import dataset_hash
from lorascope.models import resolve_model
from lorascope.runinfo import code_version, run_dir, run_id_for, utc_now


def prepare_run(config: RunConfig, home: Path, log: Callable[[str], None] = print) -> RunContext:
    run_id = run_id_for(config.name, config.config_hash())
    folder = run_dir(run_id, home)
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = resolve_data_source(config.data.source, home)
    context = RunContext(
        run_id=run_id,
        config=config,
        home=home,
        run_dir=folder,
        model_path=resolve_model(config.model.source, home, progress=log),
        data_dir=data_dir,
        eval_prompts_path=resolve_eval_prompts(config.data.eval_prompts, home),
        data_hash=dataset_hash(data_dir),
        code_version=code_version(),
    )
    (folder / "config.yaml").write_text(dump_config(config))
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "config_hash": config.config_hash(), "seed": config.seed,
        "model_path": str(context.model_path), "data_dir": str(data_dir),
        "data_hash": context.data_hash, "code_version": context.code_version,
    }, indent=2))
    warehouse.write_rows(context.warehouse, "runs", [{
        "run_id": run_id, "name": config.name, "status": "running", "started_at": utc_now(),
        "config_json": config.model_dump(mode="json"), "config_hash": config.config_hash(),
        "seed": config.seed, "model_source": config.model.source,
        "base_model_path": str(context.model_path), "adapter_path": str(context.adapter_dir),
        "data_source": config.data.source, "data_hash": context.data_hash,
        "code_version": context.code_version, "run_dir": str(folder),
    }])
    log(f"run {run_id}: model {context.model_path}, data {data_dir} ({context.data_hash})")
    return context


def finish_run(context: RunContext, status: str, error: str | None = None) -> None:
    # INSERT OR REPLACE of some columns keeps the run's other columns.
    warehouse.write_rows(context.warehouse, "runs", [{
        "run_id": context.run_id, "status": status, "finished_at": utc_now(), "error": error,
    }])


@task(name="prepare", cache_policy=NO_CACHE, retries=1)
def prepare_task(config: RunConfig, home: Path) -> RunContext:
    return prepare_run(config, home, log=get_run_logger().info)


@task(name="finish", cache_policy=NO_CACHE)
def finish_task(context: RunContext, status: str, error: str | None = None) -> None:
    finish_run(context, status, error)
