"""`lorascope gc`: what finished runs no longer need, and the space it takes.

Retention policy. Always kept: every warehouse row, and of each run its final adapters,
config.yaml, run.json, validation and evaluation reports. Dropped, for finished runs only
(status completed or failed in the warehouse, and not locked by a process writing them):
checkpoints (only a resume reads them), the prepared train and valid splits (their hash stays in
run.json and the warehouse; the test split stays, since re-evaluating the run and its report
read it), lm-eval's per-document dumps and mlx-lm's scratch adapters. A running,
interrupted or locked run, a folder the warehouse does not know, and the `keep_last` most
recently started runs are left untouched.

`plan_gc` decides from facts and sizes only; `run_facts` gathers the facts and `apply_gc`
deletes, each run under its run lock so that a run started meanwhile is never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lorascope import warehouse
from lorascope.paths import RunPaths, runs_dir, warehouse_path
from lorascope.run_lock import RunLocked, run_lock

FINISHED = ("completed", "failed")


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    folder: Path
    status: str | None  # None: the warehouse has no row for the folder
    started_at: datetime | None
    locked: bool


@dataclass(frozen=True)
class Removal:
    run_id: str
    folder: Path  # the run folder
    path: Path
    size: int
    what: str


@dataclass(frozen=True)
class GcPlan:
    removals: list[Removal]
    untouched: dict[str, str]  # run id -> why it is left alone

    @property
    def size(self) -> int:
        return sum(r.size for r in self.removals)


def droppable(folder: Path) -> list[tuple[Path, str]]:
    """The parts of a finished run folder that gc may delete, with what each is."""
    paths = RunPaths(folder)
    parts = [(paths.checkpoints, "checkpoints"),
             (paths.data / "train.jsonl", "prepared train split"),
             (paths.data / "valid.jsonl", "prepared valid split"),
             (paths.mlx_lm_scratch_adapters, "mlx-lm scratch adapters")]
    parts += [(dump, "lm-eval per-document dump")
              for dump in sorted((folder / "evaluations").glob("*/lm_eval"))]
    return [(path, what) for path, what in parts if path.exists()]


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def plan_gc(runs: list[RunFacts], keep_last: int = 0) -> GcPlan:
    """What to delete under the retention policy (module docstring), and why the rest stays."""
    by_start = sorted(runs, key=lambda r: (r.started_at or datetime.min, r.run_id), reverse=True)
    newest = {r.run_id for r in by_start[:keep_last]}
    removals, untouched = [], {}
    for run in sorted(runs, key=lambda r: r.run_id):
        if run.run_id in newest:
            untouched[run.run_id] = f"one of the {keep_last} most recent runs (--keep-last)"
        elif run.status is None:
            untouched[run.run_id] = "no row in the warehouse's runs table"
        elif run.status not in FINISHED:
            untouched[run.run_id] = f"status {run.status}"
        elif run.locked:
            untouched[run.run_id] = "locked: a process is writing it"
        else:
            removals += [Removal(run.run_id, run.folder, path, disk_size(path), what)
                         for path, what in droppable(run.folder)]
    return GcPlan(removals, untouched)


def is_locked(folder: Path) -> bool:
    try:
        with run_lock(folder, "lorascope gc (checking)"):
            return False
    except RunLocked:
        return True


def run_facts(home: Path) -> list[RunFacts]:
    """Each run folder under `home` with its warehouse status and whether it is locked."""
    folders = sorted(p for p in runs_dir(home).glob("*") if p.is_dir())
    rows = {}
    if folders and warehouse_path(home).exists():
        rows = {row["run_id"]: row for row in warehouse.select_rows(
            warehouse_path(home), "runs", ["run_id", "status", "started_at"])}
    return [RunFacts(f.name, f, rows.get(f.name, {}).get("status"),
                     rows.get(f.name, {}).get("started_at"), is_locked(f))
            for f in folders]


def apply_gc(plan: GcPlan, log: Callable[[str], None] = print) -> int:
    """Delete the plan's paths, each run's under its lock; returns the bytes freed."""
    freed = 0
    for run_id in sorted({r.run_id for r in plan.removals}):
        removals = [r for r in plan.removals if r.run_id == run_id]
        try:
            with run_lock(removals[0].folder, "lorascope gc"):
                for removal in removals:
                    if removal.path.is_dir():
                        shutil.rmtree(removal.path)
                    else:
                        removal.path.unlink(missing_ok=True)
                    freed += removal.size
        except RunLocked:
            log(f"{run_id}: skipped, a process started writing it")
    return freed


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{value:.1f} {unit}"
