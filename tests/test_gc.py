"""`lorascope gc` on run folders laid out as runs leave them, with their status in a real
warehouse: what it drops, what it keeps, and that it deletes nothing without --yes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from lorascope import gc
from lorascope.cli import main
from lorascope.paths import RunPaths, runs_dir, warehouse_path
from lorascope.warehouse import write_rows

KEPT = ("config.yaml", "run.json", "report.md", "validation.md", "adapters/adapters.safetensors",
        "evaluations/e1/report.md", "data/test.jsonl")
DROPPED = ("checkpoints/step-0000002/adapters.safetensors", "data/train.jsonl", "data/valid.jsonl",
           "evaluations/e1/lm_eval/tuned/arc_easy.jsonl", ".mlx_lm_adapters.safetensors")


def make_run(home: Path, run_id: str, status: str, day: int = 1) -> Path:
    folder = RunPaths.of(run_id, home).root
    for name in (*KEPT, *DROPPED):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x" * 100)
    write_rows(warehouse_path(home), "runs", [
        {"run_id": run_id, "status": status, "started_at": datetime(2026, 1, day)}])
    return folder


def removed_paths(home: Path, keep_last: int = 0) -> set[str]:
    plan = gc.plan_gc(gc.run_facts(home), keep_last)
    return {str(r.path.relative_to(runs_dir(home))) for r in plan.removals}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_a_finished_run_loses_checkpoints_training_data_and_dumps_but_keeps_its_test_split(
    home,
):
    make_run(home, "done", "completed")

    assert removed_paths(home) == {"done/checkpoints", "done/data/train.jsonl",
                                   "done/data/valid.jsonl", "done/evaluations/e1/lm_eval",
                                   "done/.mlx_lm_adapters.safetensors"}


def test_a_failed_run_counts_as_finished(home):
    make_run(home, "broken", "failed")

    assert "broken/checkpoints" in removed_paths(home)


def test_a_running_run_is_left_untouched(home):
    make_run(home, "busy", "running")

    plan = gc.plan_gc(gc.run_facts(home))
    assert plan.removals == []
    assert plan.untouched == {"busy": "status running"}


def test_a_locked_run_is_left_untouched_whatever_its_status(home):
    folder = make_run(home, "held", "completed")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
         str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert removed_paths(home) == set()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_folder_the_warehouse_does_not_know_is_left_untouched(home):
    make_run(home, "known", "completed")
    (runs_dir(home) / "stray" / "checkpoints").mkdir(parents=True)

    assert not any(path.startswith("stray") for path in removed_paths(home))


def test_keep_last_leaves_the_most_recently_started_runs_untouched(home):
    for day, run_id in enumerate(("oldest", "middle", "newest"), start=1):
        make_run(home, run_id, "completed", day=day)

    assert {p.split("/")[0] for p in removed_paths(home, keep_last=2)} == {"oldest"}


def test_gc_without_yes_deletes_nothing_and_prints_the_total(home, monkeypatch, capsys):
    monkeypatch.setenv("LORASCOPE_HOME", str(home))
    folder = make_run(home, "done", "completed")

    assert main(["gc"]) == 0

    assert "would free 500.0 B in 5 paths" in capsys.readouterr().out
    assert all((folder / name).exists() for name in DROPPED)


def test_gc_yes_deletes_the_dropped_parts_and_keeps_adapters_config_and_reports(
    home, monkeypatch, capsys
):
    monkeypatch.setenv("LORASCOPE_HOME", str(home))
    folder = make_run(home, "done", "completed")

    assert main(["gc", "--yes"]) == 0

    assert [name for name in DROPPED if (folder / name).exists()] == []
    assert [name for name in KEPT if not (folder / name).exists()] == []
    assert "freed 500.0 B" in capsys.readouterr().out


@pytest.mark.slow
def test_finished_prefect_flow_runs_older_than_the_cutoff_are_deleted(prefect_harness):
    from prefect import flow
    from prefect.exceptions import ObjectNotFound

    from lorascope.flows.housekeeping import delete_flow_runs, old_flow_runs

    @flow
    def tiny() -> int:
        return 1

    state = tiny(return_state=True)
    finished = state.state_details.flow_run_id

    old = old_flow_runs(older_than_days=0)
    assert finished in {run.id for run in old}
    assert old_flow_runs(older_than_days=1) == []

    delete_flow_runs(old)

    from prefect import get_client

    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_flow_run(finished)
