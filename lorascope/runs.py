"""A run and its evaluations: ids, the context every step needs (resolved once), lifecycle.

A run trains adapters once; its id hashes everything that changes them (all but `eval`).
Each set of evaluation settings is an evaluation of the run, named after their hash, so
changing eval settings re-evaluates without retraining. A run is reproducible and findable:
its folder records the exact config, seed, data hash and code version, and the warehouse's
`runs` and `evaluations` rows say whether each is running, completed, failed or interrupted.

A run whose writer died without finishing (SIGKILL, power loss, a killed Prefect worker)
stays `running` until `mark_interrupted` sees that nobody holds its lock (the kernel releases
a dead holder's flock) and marks it, and its running evaluations, `interrupted`, with the last
heartbeat training wrote. `lorascope status` calls it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lorascope import __version__, warehouse
from lorascope.config import ConfigError, RunConfig, dump_config, load_config
from lorascope.data.builtin import resolve_data_source
from lorascope.data.prepare import data_error_rows, prepare_data
from lorascope.data.records import DataError
from lorascope.data.sources import dataset_hash
from lorascope.models.loader import resolve_model
from lorascope.paths import RunPaths, warehouse_path
from lorascope.run_lock import RunLocked, run_lock

REPO_ROOT = Path(__file__).resolve().parent.parent
ADAPTER_FILES = ("adapter_config.json", "adapters.safetensors")
HEARTBEAT_FILE = "heartbeat.json"


def run_id_for(config: RunConfig) -> str:
    """Same training settings, same run: re-running a config resumes (or re-evaluates) it."""
    return f"{config.name}-{config.training_hash()[:10]}"


def evaluation_id_for(run_id: str, config: RunConfig) -> str:
    return f"{run_id}-eval-{config.eval_hash()[:8]}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def code_version() -> str:
    """Package version plus the git commit (and '+dirty') when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"


@dataclass(frozen=True)
class RunContext:
    """What every pipeline step needs to know about its run, resolved once at the start."""

    run_id: str
    config: RunConfig
    home: Path
    model_path: Path
    data_hash: str
    code_version: str

    @property
    def evaluation_id(self) -> str:
        """The evaluation of this run that the config's eval settings define."""
        return evaluation_id_for(self.run_id, self.config)

    @property
    def paths(self) -> RunPaths:
        return RunPaths.of(self.run_id, self.home)

    @property
    def warehouse(self) -> Path:
        return warehouse_path(self.home)

    @property
    def evaluates_external_adapter(self) -> bool:
        """True for `lorascope eval` of adapters trained elsewhere (adapters/ is a link)."""
        return self.paths.adapters.is_symlink()


def start_run(config: RunConfig, home: Path, log: Callable[[str], None] = print) -> RunContext:
    """Resolve the model, prepare the data, record the run as started; returns its context.

    Unreadable data is recorded (a failed run with a `validations` row) before DataError
    propagates, so the warehouse says why the run stopped.
    """
    run_id = run_id_for(config)
    paths = RunPaths.of(run_id, home)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(dump_config(config))
    model_path = resolve_model(config.model.source, home, progress=log)
    run_row = {
        "run_id": run_id, "name": config.name, "status": "running", "started_at": utc_now(),
        "config_json": config.model_dump(mode="json"), "config_hash": config.config_hash(),
        "seed": config.seed, "model_source": config.model.source,
        "base_model_path": str(model_path), "adapter_path": str(paths.adapters),
        "data_source": config.data.source, "code_version": code_version(),
        "run_dir": str(paths.root),
    }
    try:
        summary = prepare_data(config.data, resolve_data_source(config.data.source, home),
                               paths.data, model_path, config.model.chat_template, log)
    except DataError as error:
        path = warehouse_path(home)
        warehouse.write_rows(path, "runs", [{**run_row, "status": "failed",
                                             "finished_at": utc_now(), "error": str(error)}])
        warehouse.replace_rows(path, "validations",
                               [{"run_id": run_id, **row} for row in data_error_rows(error)],
                               run_id=run_id)
        paths.validation_report.write_text(f"# Data could not be read\n\n`{error}`\n")
        raise
    context = RunContext(
        run_id=run_id, config=config, home=home, model_path=model_path,
        data_hash=dataset_hash(paths.data), code_version=run_row["code_version"],
    )
    paths.run_info.write_text(json.dumps({
        "run_id": run_id, "config_hash": config.config_hash(), "seed": config.seed,
        "model_path": str(model_path), "data_dir": str(paths.data),
        "data_hash": context.data_hash, "code_version": context.code_version,
    }, indent=2))
    warehouse.write_rows(context.warehouse, "runs", [{**run_row, "data_hash": context.data_hash}])
    warehouse.replace_rows(context.warehouse, "data_preparation",
                           [{"run_id": run_id, **row} for row in summary], run_id=run_id)
    log(f"run {run_id}: model {model_path}, data {paths.data} ({context.data_hash})")
    return context


def finish_run(context: RunContext, status: str, error: str | None = None) -> None:
    # INSERT OR REPLACE of some columns keeps the run's other columns.
    warehouse.write_rows(context.warehouse, "runs", [{
        "run_id": context.run_id, "status": status, "finished_at": utc_now(), "error": error,
    }])


def open_run(run_id: str, home: Path, overrides: list[str] | None = None) -> RunContext:
    """The context of an existing run, for evaluating it again: its recorded config with
    `overrides`, which may change eval settings only (anything else would be another run)."""
    paths = RunPaths.of(run_id, home)
    if not paths.run_info.is_file():
        raise ConfigError(f"no run {run_id!r} under {paths.root.parent} (no {paths.run_info.name}"
                          " there: a run that never finished preparing its data)")
    config = load_config(paths.config, overrides)
    if run_id_for(config) != run_id:
        changed = sorted(
            key for key, value in config.model_dump(mode="json", exclude={"eval"}).items()
            if value != load_config(paths.config).model_dump(mode="json")[key])
        raise ConfigError(f"re-evaluating {run_id}: only eval.* settings may change, not "
                          f"{', '.join(changed)} (that is another run: `lorascope run`)")
    if not all((paths.adapters / name).is_file() for name in ADAPTER_FILES):
        raise ConfigError(f"run {run_id} has no trained adapters yet ({paths.adapters}): "
                          f"finish its training first, `lorascope resume {run_id}`")
    info = json.loads(paths.run_info.read_text())
    return RunContext(run_id=run_id, config=config, home=home, model_path=Path(info["model_path"]),
                      data_hash=info["data_hash"], code_version=code_version())


def start_evaluation(context: RunContext) -> None:
    """Record the run's evaluation (its settings and the adapters it evaluates) as running."""
    adapters = context.paths.adapters
    warehouse.write_rows(context.warehouse, "evaluations", [{
        "evaluation_id": context.evaluation_id, "run_id": context.run_id, "status": "running",
        "started_at": utc_now(), "finished_at": None, "error": None,
        "eval_config": context.config.eval.model_dump(mode="json"),
        "eval_hash": context.config.eval_hash(), "adapter_path": str(adapters.resolve()),
        "adapter_hash": adapter_hash(adapters), "code_version": context.code_version,
    }])


def finish_evaluation(context: RunContext, status: str, error: str | None = None) -> None:
    warehouse.write_rows(context.warehouse, "evaluations", [{
        "evaluation_id": context.evaluation_id, "status": status, "finished_at": utc_now(),
        "error": error,
    }])


def check_adapter_folder(folder: Path) -> Path:
    """An mlx-lm adapter folder (`mlx_lm.lora --adapter-path`, or a run's adapters/)."""
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: not an mlx-lm adapter folder (missing {', '.join(missing)}). Give the "
            "--adapter-path folder of `mlx_lm.lora --train`, or a lorascope run's adapters/."
        )
    return folder.resolve()


def adapter_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:10]


def adapter_run_config(
    config: RunConfig, adapter: Path | None, home: Path
) -> tuple[RunConfig, Path]:
    """The config of a run that evaluates base vs base+adapter without training, named after
    the adapter's content hash (evaluating the same adapter again resumes it), and the adapter
    folder: `adapter`, by default the adapters this config trained with `lorascope run`."""
    if adapter is None:
        adapter = RunPaths.of(run_id_for(config), home).adapters
    adapter = check_adapter_folder(adapter)
    name = f"{config.name}-adapter-{adapter_hash(adapter)}"
    return config.model_copy(update={"name": name}), adapter


def start_adapter_run(
    config: RunConfig, adapter: Path, home: Path, log: Callable[[str], None] = print,
) -> RunContext:
    """Start the run of adapter_run_config(); its adapters/ links to `adapter`."""
    context = start_run(config, home, log)
    link = context.paths.adapters
    if link.is_symlink() or link.exists():
        if link.resolve() != adapter:
            raise FileExistsError(f"{link} already holds other adapters than {adapter}")
    else:
        link.symlink_to(adapter, target_is_directory=True)
    return context


def heartbeat_path(run_dir: Path) -> Path:
    """Where training writes its heartbeat (training.supervisor): pid, host, step, time."""
    return run_dir / HEARTBEAT_FILE


def last_heartbeat(run_dir: Path) -> str:
    """What training's heartbeat file says: its time, step, pid and host (or that there is
    none)."""
    try:
        beat = json.loads(heartbeat_path(run_dir).read_text())
        return (f"training's last heartbeat {beat['at']} UTC at step {beat['step']}, pid "
                f"{beat['pid']} on {beat['host']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "no training heartbeat: it stopped before training started"


def mark_interrupted(home: Path) -> list[str]:
    """Mark `interrupted` every running run and evaluation whose writer is gone (nobody holds
    the run's lock); returns their ids. Call it from a process that writes no run: a lock
    this process holds counts as free (run_lock is re-entrant)."""
    path = warehouse_path(home)
    if not path.exists():
        return []
    running = {row["run_id"] for row in warehouse.select_rows(path, "runs", ["run_id"],
                                                              status="running")}
    evaluating = warehouse.select_rows(path, "evaluations", ["evaluation_id", "run_id"],
                                       status="running")
    marked = []
    for run_id in sorted(running | {row["run_id"] for row in evaluating}):
        run_dir = RunPaths.of(run_id, home).root
        try:
            # Held while marking, so that a writer starting meanwhile cannot be marked.
            with run_lock(run_dir, "lorascope status") if run_dir.is_dir() else nullcontext():
                error = (f"interrupted: the process writing it stopped without finishing "
                         f"({last_heartbeat(run_dir)}); `lorascope resume {run_id}` continues "
                         "from its newest checkpoint")
                ids = [run_id] if run_id in running else []
                warehouse.write_rows(path, "runs", [
                    {"run_id": i, "status": "interrupted", "finished_at": utc_now(),
                     "error": error} for i in ids])
                evaluations = [row["evaluation_id"] for row in evaluating
                               if row["run_id"] == run_id]
                warehouse.write_rows(path, "evaluations", [
                    {"evaluation_id": i, "status": "interrupted", "finished_at": utc_now(),
                     "error": error} for i in evaluations])
                marked += ids + evaluations
        except RunLocked:
            continue  # its writer is alive
    return marked
