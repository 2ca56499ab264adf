"""The warehouse module on real DuckDB files: connect, migrations, writes, locking,
format_table, saved query loading."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_evaluation_rows

from lorascope import warehouse
from lorascope.warehouse import (
    MIGRATION_VERSIONS,
    SCHEMA_VERSION,
    WarehouseError,
    connect,
    format_table,
    query,
    replace_rows,
    saved_query,
    write_rows,
)


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens `path` for writing and keeps it for `seconds`."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(float(sys.argv[2]))",
            str(path),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_connect_twice_applies_each_migration_once_and_records_its_version(tmp_path):
    path = tmp_path / "nested" / "warehouse.duckdb"
    connect(path).close()
    connect(path).close()

    rows = query(path, "select version from schema_version order by version")[1]
    assert rows == [(v,) for v in MIGRATION_VERSIONS]
    assert MIGRATION_VERSIONS[-1] == SCHEMA_VERSION


def test_connect_applies_a_migration_merged_after_a_higher_numbered_one(tmp_path):
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    migrations = Path(warehouse.__file__).parent / "migrations"
    merged_late = 5  # 0005 creates the experiments table, which no later migration touches
    with duckdb.connect(str(path)) as con:  # a warehouse that has every migration but 0005
        for version in [v for v in MIGRATION_VERSIONS if v != merged_late]:
            (sql_file,) = migrations.glob(f"{version:04d}_*.sql")
            con.execute(sql_file.read_text())
            con.execute("insert into schema_version values (?, now())", [version])
    connect(path).close()

    rows = query(path, "select version from schema_version order by version")[1]
    assert rows == [(v,) for v in MIGRATION_VERSIONS]


def test_upgrading_a_version_1_warehouse_keeps_its_failure_modes(tmp_path):
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    migrations = Path(warehouse.__file__).parent / "migrations"
    with duckdb.connect(str(path)) as con:
        con.execute((migrations / "0001_initial.sql").read_text())
        con.execute("insert into schema_version values (1, now())")
        con.execute("insert into failure_modes values ('r', 'base', 'p', 'empty', '')")
    connect(path).close()

    assert query(path, "select run_id, mode, instruction_id from generation_failures")[1] == [
        ("r", "empty", "")
    ]


def test_connect_read_only_on_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No warehouse at"):
        connect(tmp_path / "absent.duckdb", read_only=True)
    assert not (tmp_path / "absent.duckdb").exists()


def test_connect_refuses_a_warehouse_from_a_newer_schema_version(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:
        con.execute("insert into schema_version values (?, now())", [SCHEMA_VERSION + 1])

    with pytest.raises(WarehouseError, match="upgrade lorascope"):
        connect(path)


def test_write_rows_twice_with_the_same_rows_keeps_the_same_row_count(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    rows = [
        {"run_id": "r", "variant": "base", "prompt_id": f"p{i}", "metric": "m", "value": 1.0}
        for i in range(3)
    ]
    assert write_evaluation_rows(path, "scores", rows) == 3
    assert write_evaluation_rows(path, "scores", rows) == 3

    assert query(path, "select count(*) from scores")[1] == [(3,)]


def test_write_rows_replaces_given_columns_and_keeps_the_others(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_rows(path, "runs", [{"run_id": "r", "status": "running", "seed": 7}])
    write_rows(path, "runs", [{"run_id": "r", "status": "completed"}])

    assert query(path, "select status, seed from runs")[1] == [("completed", 7)]


def test_write_rows_stores_dicts_and_lists_as_json_that_round_trips(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    config = {"lora": {"rank": 8, "scale": 20.0}, "layers": [0, 1], "note": "é ✓"}
    examples = [{"file": "train.jsonl", "line": 3, "value": None}]
    write_rows(path, "runs", [{"run_id": "r", "status": "running", "config_json": config}])
    write_rows(
        path,
        "validations",
        [{"run_id": "r", "expectation": "rows", "success": False, "examples": examples}],
    )

    (stored_config,) = query(path, "select config_json from runs")[1][0]
    ((column_name, stored_examples),) = query(
        path, "select column_name, examples from validations"
    )[1]
    assert json.loads(stored_config) == config
    assert json.loads(stored_examples) == examples
    assert column_name == ""  # table-level expectation
    (rank,) = query(path, "select config_json->>'$.lora.rank' from runs")[1][0]
    assert rank == "8"


def test_write_rows_rejects_an_unknown_column_naming_the_valid_ones(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with pytest.raises(ValueError, match=r"no column 'scor'.*prompt_id"):
        write_rows(path, "scores", [{"run_id": "r", "scor": 1}])
    with pytest.raises(ValueError, match=r"No table 'score'.*scores"):
        write_rows(path, "score", [{"run_id": "r"}])


def test_write_rows_rejects_two_rows_with_one_primary_key(tmp_path):
    row = {"evaluation_id": "e", "run_id": "r", "variant": "base", "prompt_id": "p",
           "metric": "m", "value": 1.0}
    with pytest.raises(ValueError, match="rows 0 and 1 have the same primary key"):
        write_rows(tmp_path / "warehouse.duckdb", "scores", [row, {**row, "value": 0.0}])


def test_write_rows_reports_a_check_constraint_violation_with_the_table(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with pytest.raises(WarehouseError, match="rows to runs .*CHECK constraint"):
        write_rows(path, "runs", [{"run_id": "r", "status": "done"}])


def test_replace_rows_replaces_only_the_matching_rows_of_one_run(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_evaluation_rows(
        path,
        "generations",
        [
            {"run_id": run, "variant": variant, "prompt_id": "p"}
            for run in ("a", "b")
            for variant in ("base", "tuned")
        ],
    )

    new = [{"evaluation_id": "a", "run_id": "a", "variant": "tuned", "prompt_id": "q"}]
    assert replace_rows(path, "generations", new, evaluation_id="a", variant="tuned") == 1
    remaining = query(path, "select run_id, variant, prompt_id from generations order by all")[1]
    assert remaining == [("a", "base", "p"), ("a", "tuned", "q"), ("b", "base", "p"),
                         ("b", "tuned", "p")]


def test_replace_rows_keeps_the_old_rows_when_the_new_ones_cannot_be_written(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_rows(path, "runs", [{"run_id": "r", "status": "running"}])
    write_evaluation_rows(path, "generations",
                          [{"run_id": "r", "variant": "base", "prompt_id": "p"}])
    broken = [{"evaluation_id": "r", "run_id": "r", "variant": "base", "prompt_id": "q",
               "no_such_column": 1}]

    with pytest.raises(ValueError, match="no_such_column"):
        replace_rows(path, "generations", broken, evaluation_id="r")

    assert query(path, "select prompt_id from generations")[1] == [("p",)]


def test_saved_query_with_an_unknown_name_raises_key_error_listing_the_names():
    with pytest.raises(KeyError, match="available: .*train_curve"):
        saved_query("no_such_query")


def test_connect_waits_while_another_process_holds_the_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = _hold_lock(path, seconds=1.0)
    try:
        connect(path).close()
        assert holder.poll() is not None  # connected only once the holder had exited
    finally:
        holder.wait(timeout=30)


def test_connect_names_the_problem_when_the_file_stays_locked(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setattr(warehouse, "LOCK_WAIT_SECONDS", 0.3)
    holder = _hold_lock(path, seconds=60)
    try:
        with pytest.raises(WarehouseError, match="still in use by another process"):
            query(path, "select 1")
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_write_rows_from_several_threads_at_once_all_land(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    errors: list[Exception] = []

    def load(run_id: str) -> None:
        try:
            for step in range(10):
                write_rows(
                    path,
                    "train_metrics",
                    [{"run_id": run_id, "step": step, "split": "train", "loss": 1.0}],
                )
        except Exception as e:  # collected so the test reports it
            errors.append(e)

    threads = [threading.Thread(target=load, args=(f"run{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert query(path, "select count(*) from train_metrics")[1] == [(40,)]


def test_format_table_draws_a_box_and_cuts_long_cells():
    text = format_table(
        ["name", "n", "note"],
        [("a", 1, "x" * 100), ("bb", 22.5, None)],
        max_width=10,
    )
    assert text.splitlines() == [
        "+------+------+------------+",
        "| name | n    | note       |",
        "+------+------+------------+",
        "| a    |    1 | xxxxxxxxx… |",
        "| bb   | 22.5 | NULL       |",
        "+------+------+------------+",
        "(2 rows)",
    ]
