"""Rows written while another process holds the warehouse file are staged beside it and loaded
later, each batch exactly once; a real training run completes under a reader that holds the
file throughout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import home_with_tiny_mistral

from lorascope import warehouse
from lorascope.warehouse import WarehouseError, WarehouseLocked, query, write_rows
from lorascope.warehouse.staging import pending_batches, staging_dir


def hold_read_only(path: Path) -> subprocess.Popen:
    """Another process holding `path` open read-only (as `duckdb -readonly` does) until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True); "
         "print('holding', flush=True); time.sleep(600)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.kill()
    holder.wait(timeout=30)


def metric(step: int, loss: float = 1.0) -> dict:
    return {"run_id": "r", "step": step, "split": "train", "loss": loss}


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(warehouse, "LOCK_WAIT_SECONDS", 0.3)
    path = tmp_path / "warehouse.duckdb"
    warehouse.connect(path).close()
    return path


@pytest.fixture
def held(path: Path):
    holder = hold_read_only(path)
    yield holder
    if holder.poll() is None:
        release(holder)


def test_write_rows_while_a_reader_holds_the_file_stages_them_instead_of_failing(path, held):
    assert write_rows(path, "train_metrics", [metric(1), metric(2)]) == 2

    assert [b.table for b in pending_batches(path)] == ["train_metrics"]


def test_staged_rows_load_at_the_next_write_once_the_file_is_free(path, held):
    write_rows(path, "train_metrics", [metric(1)])
    release(held)

    write_rows(path, "train_metrics", [metric(2)])

    assert query(path, "select step from train_metrics order by step")[1] == [(1,), (2,)]
    assert pending_batches(path) == []


def test_a_query_loads_staged_rows_before_reading(path, held):
    write_rows(path, "train_metrics", [metric(1)])
    release(held)

    assert query(path, "select count(*) from train_metrics")[1] == [(1,)]


def test_a_query_while_staged_rows_cannot_load_names_the_waiting_batches(path, held):
    write_rows(path, "train_metrics", [metric(1)])

    with pytest.raises(WarehouseLocked, match=r"1 batch\(es\) of rows wait in .*staging"):
        query(path, "select count(*) from train_metrics")


def test_staged_batches_load_in_the_order_they_were_written(path, held):
    write_rows(path, "train_metrics", [metric(1, loss=3.0)])
    write_rows(path, "train_metrics", [metric(1, loss=2.0)])
    release(held)

    assert query(path, "select loss from train_metrics")[1] == [(2.0,)]


def test_staged_timestamps_and_json_values_load_with_their_column_types(path, held):
    started = datetime(2026, 12, 2, 13, 5, 7, 123456)
    write_rows(path, "runs", [{"run_id": "r", "started_at": started,
                               "config_json": {"seed": 1}, "run_dir": path.parent}])
    release(held)

    assert query(path, "select started_at, config_json->>'seed', run_dir from runs")[1] == [
        (started, "1", str(path.parent))]


def test_loading_a_batch_again_after_a_crash_before_its_file_was_deleted_changes_nothing(
    path, held, tmp_path
):
    write_rows(path, "train_metrics", [metric(1, loss=3.0)])
    (batch,) = pending_batches(path)
    kept = shutil.copy(batch.path, tmp_path / "kept")
    release(held)
    warehouse.load_staged(path)
    with warehouse.connect(path) as con:  # a later step changes the loaded row
        con.execute("update train_metrics set loss = 5.0")
    # The state a crash between the load's commit and the file's deletion leaves behind.
    shutil.copy(kept, batch.path)

    warehouse.load_staged(path)

    assert query(path, "select loss from train_metrics")[1] == [(5.0,)]
    assert query(path, "select batch_id from staged_loads")[1] == [(batch.batch_id,)]
    assert pending_batches(path) == []


def test_a_staged_batch_that_cannot_load_is_set_aside_naming_its_file(path, held):
    write_rows(path, "train_metrics", [{"run_id": "r", "step": 1, "no_such_column": 1}])
    release(held)

    with pytest.raises(WarehouseError, match=r"could not be loaded .* set aside"):
        warehouse.load_staged(path)
    assert pending_batches(path) == []
    assert len(list(staging_dir(path).glob("*.failed"))) == 1


@pytest.mark.slow
def test_training_completes_while_a_reader_holds_the_warehouse_and_every_metric_lands_once(
    tmp_path: Path, tiny_mistral_dir: Path, tiny_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lorascope.config import load_config
    from lorascope.runs import start_run
    from lorascope.training.steps import train_run

    monkeypatch.setattr(warehouse, "LOCK_WAIT_SECONDS", 0.5)
    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    context = start_run(load_config(tiny_config()), home, log=lambda _: None)
    emitted: list[dict] = []
    holder = hold_read_only(context.warehouse)
    try:
        train_run(context, on_metrics=emitted.extend, log=lambda _: None)
        assert holder.poll() is None  # the reader held the file for the whole run
        assert pending_batches(context.warehouse)
    finally:
        release(holder)

    _, rows = query(context.warehouse,
                    "select step, split, loss from train_metrics where run_id = ? "
                    "order by split, step", [context.run_id])
    assert rows == sorted(((m["step"], m["split"], m["loss"]) for m in emitted),
                          key=lambda row: (row[1], row[0]))
