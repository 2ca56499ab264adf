"""The warehouse on real DuckDB files: migrations, writes, views, saved queries, the stock CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

import warehouse
from warehouse import (
    SCHEMA_VERSION,
    WarehouseError,
    connect,
    delete_rows,
    format_table,
    query,
    saved_query,
    saved_query_names,
    write_rows,
)

RUN = "demo-20250102-090000-abc123"
OLDER_RUN = "demo-20250101-090000-def456"

# Four multiple-choice items scored by both variants, plus one only base answered.
#            item:  q1    q2     q3     q4
BASE_CORRECT = [True, True, False, False]  # acc 2/4
TUNED_CORRECT = [True, False, True, True]  # acc 3/4
BASE_NORM = [True, False, False, False]  # acc_norm 1/4
TUNED_NORM = [True, True, False, False]  # acc_norm 2/4


def _small_dataset(path: Path) -> None:
    write_rows(
        path,
        "runs",
        [
            {
                "run_id": run_id,
                "name": "demo",
                "status": status,
                "started_at": datetime(2025, 1, day, 9, 0),
                "finished_at": datetime(2025, 1, day, 9, minutes),
                "run_dir": Path("/tmp/runs") / run_id,
            }
            for run_id, status, day, minutes in [
                (OLDER_RUN, "failed", 1, 5),
                (RUN, "completed", 2, 30),
            ]
        ],
    )
    write_rows(
        path,
        "train_metrics",
        [
            {"run_id": OLDER_RUN, "step": 10, "split": "train", "loss": 9.0, "learning_rate": 1e-4},
            {"run_id": RUN, "step": 10, "split": "train", "loss": 2.0, "learning_rate": 1e-4},
            {"run_id": RUN, "step": 20, "split": "train", "loss": 1.5, "learning_rate": 1e-4},
            {"run_id": RUN, "step": 20, "split": "valid", "loss": 1.7, "learning_rate": None},
        ],
    )
    write_rows(
        path,
        "prompts",
        [
            {"run_id": RUN, "prompt_id": p, "domain": d, "category": "format", "messages": m}
            for p, d, m in [
                ("p1", "in_domain", [{"role": "user", "content": "List two fruits."}]),
                ("p2", "in_domain", [{"role": "user", "content": "Answer in JSON."}]),
                ("p3", "out_of_domain", [{"role": "user", "content": "Capital of France?"}]),
            ]
        ],
    )
    write_rows(
        path,
        "generations",
        [
            {
                "run_id": RUN,
                "variant": variant,
                "prompt_id": p,
                "prompt_text": f"[INST] {p} [/INST]",
                "output_text": f"{variant} answer to {p}",
                "finish_reason": "stop",
            }
            for variant in ("base", "tuned")
            for p in ("p1", "p2", "p3")
        ],
    )
    # follows_format: base passes p1, p2; tuned passes p1, p3 -> p2 is the one regression.
    passed = {"base": {"p1": 1, "p2": 1, "p3": 0}, "tuned": {"p1": 1, "p2": 0, "p3": 1}}
    write_rows(
        path,
        "scores",
        [
            {"run_id": RUN, "variant": v, "prompt_id": p, "metric": "follows_format", "value": x}
            for v, by_prompt in passed.items()
            for p, x in by_prompt.items()
        ],
    )
    write_rows(
        path,
        "capability_items",
        [
            {
                "run_id": RUN,
                "variant": variant,
                "task": "arc_easy",
                "item_id": f"q{i + 1}",
                "correct": correct[i],
                "correct_norm": norm[i],
            }
            for variant, correct, norm in [
                ("base", BASE_CORRECT, BASE_NORM),
                ("tuned", TUNED_CORRECT, TUNED_NORM),
            ]
            for i in range(4)
        ]
        + [
            {
                "run_id": RUN,
                "variant": "base",
                "task": "arc_easy",
                "item_id": "q5",
                "correct": True,
                "correct_norm": True,
            }
        ],
    )
    write_rows(
        path,
        "failure_modes",
        [
            {"run_id": RUN, "variant": v, "prompt_id": p, "mode": m, "evidence": "..."}
            for v, p, m in [
                ("base", "p3", "repetition"),
                ("tuned", "p1", "repetition"),
                ("tuned", "p2", "repetition"),
                ("tuned", "p2", "refusal"),
            ]
        ],
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    _small_dataset(path)
    return path


def _rows_as_dicts(path: Path, sql: str, params: list | None = None) -> list[dict]:
    columns, rows = query(path, sql, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


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
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


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
    assert write_rows(path, "scores", rows) == 3
    assert write_rows(path, "scores", rows) == 3

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
    row = {"run_id": "r", "variant": "base", "prompt_id": "p", "metric": "m", "value": 1.0}
    with pytest.raises(ValueError, match="rows 0 and 1 have the same primary key"):
        write_rows(tmp_path / "warehouse.duckdb", "scores", [row, {**row, "value": 0.0}])


def test_write_rows_reports_a_check_constraint_violation_with_the_table(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with pytest.raises(WarehouseError, match="rows to runs .*CHECK constraint"):
        write_rows(path, "runs", [{"run_id": "r", "status": "done"}])


def test_delete_rows_removes_only_the_matching_rows_of_one_run(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_rows(
        path,
        "generations",
        [
            {"run_id": run, "variant": variant, "prompt_id": "p"}
            for run in ("a", "b")
            for variant in ("base", "tuned")
        ],
    )

    assert delete_rows(path, "generations", "a", variant="tuned") == 1
    remaining = query(path, "select run_id, variant from generations order by all")[1]
    assert remaining == [("a", "base"), ("b", "base"), ("b", "tuned")]


def test_instruction_following_gives_n_and_mean_per_variant_domain_and_metric(dataset):
    rows = _rows_as_dicts(
        dataset, "select * from instruction_following order by variant, domain, metric"
    )
    assert [(r["variant"], r["domain"], r["n"], r["mean_value"]) for r in rows] == [
        ("base", "in_domain", 2, 1.0),
        ("base", "out_of_domain", 1, 0.0),
        ("tuned", "in_domain", 2, 0.5),
        ("tuned", "out_of_domain", 1, 1.0),
    ]


def test_capability_preservation_gives_paired_delta_and_95_ci_on_shared_items(dataset):
    (row,) = _rows_as_dicts(dataset, "select * from capability_preservation")
    # acc: d = tuned - base = [0, -1, 1, 1], mean 0.25, squared deviations sum to
    # 0.0625 + 1.5625 + 0.5625 + 0.5625 = 2.75, sample sd = sqrt(2.75 / 3).
    margin = 1.96 * math.sqrt(2.75 / 3) / math.sqrt(4)
    # acc_norm: d = [0, 1, 0, 0], mean 0.25, sample sd = sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5.
    margin_norm = 1.96 * 0.5 / 2
    expected = {
        "task": "arc_easy",
        "n": 4,  # q5 was answered by base only
        "base_acc": 0.5,
        "tuned_acc": 0.75,
        "delta_acc": 0.25,
        "delta_acc_ci_low": 0.25 - margin,
        "delta_acc_ci_high": 0.25 + margin,
        "base_acc_norm": 0.25,
        "tuned_acc_norm": 0.5,
        "delta_acc_norm": 0.25,
        "delta_acc_norm_ci_low": 0.25 - margin_norm,
        "delta_acc_norm_ci_high": 0.25 + margin_norm,
    }
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert row["delta_acc_ci_low"] == pytest.approx(-0.688279, abs=1e-6)
    assert row["delta_acc_norm_ci_high"] == pytest.approx(0.74)


def test_goal_improvement_gives_base_and_tuned_means_and_delta_per_domain(dataset):
    rows = _rows_as_dicts(dataset, "select * from goal_improvement order by domain")
    assert [(r["domain"], r["n"], r["base_mean"], r["tuned_mean"], r["delta"]) for r in rows] == [
        ("in_domain", 2, 1.0, 0.5, -0.5),
        ("out_of_domain", 1, 0.0, 1.0, 1.0),
    ]


def test_regressions_lists_exactly_the_check_base_passed_and_tuned_failed(dataset):
    rows = _rows_as_dicts(dataset, "select * from regressions")
    assert rows == [
        {
            "run_id": RUN,
            "domain": "in_domain",
            "category": "format",
            "prompt_id": "p2",
            "metric": "follows_format",
            "prompt_text": "[INST] p2 [/INST]",
            "base_output": "base answer to p2",
            "tuned_output": "tuned answer to p2",
        }
    ]


def test_failure_mode_counts_puts_base_and_tuned_counts_side_by_side(dataset):
    rows = query(
        dataset,
        "select mode, base_count, tuned_count, delta from failure_mode_counts order by mode",
    )[1]
    assert rows == [("refusal", 0, 1, 1), ("repetition", 1, 2, 1)]


@pytest.mark.parametrize("name", saved_query_names())
def test_every_saved_query_runs_on_the_small_dataset(dataset, name):
    columns, rows = query(dataset, saved_query(name))
    assert columns
    assert rows


def test_saved_queries_include_the_documented_names():
    assert set(saved_query_names()) == {
        "runs",
        "goal_improvement",
        "capability_deltas",
        "regressions",
        "failure_modes",
        "train_curve",
    }


def test_runs_query_lists_latest_run_first_with_its_wall_time(dataset):
    rows = _rows_as_dicts(dataset, saved_query("runs"))
    assert [(r["run_id"], r["status"]) for r in rows] == [
        (RUN, "completed"),
        (OLDER_RUN, "failed"),
    ]
    assert rows[0]["wall_time"].total_seconds() == 30 * 60


def test_train_curve_query_shows_the_loss_per_step_of_the_latest_run(dataset):
    rows = query(dataset, saved_query("train_curve"))[1]
    assert [row[:4] for row in rows] == [(RUN, 10, 2.0, None), (RUN, 20, 1.5, 1.7)]


def test_saved_query_with_an_unknown_name_raises_key_error_listing_the_names():
    with pytest.raises(KeyError, match="available: .*train_curve"):
        saved_query("no_such_query")


def test_query_opens_read_only_and_refuses_an_insert(dataset):
    with pytest.raises(WarehouseError, match="read-only"):
        query(dataset, "insert into runs (run_id, status) values ('x', 'running')")
    assert query(dataset, "select count(*) from runs where run_id = 'x'")[1] == [(0,)]


def test_stock_duckdb_cli_opens_the_warehouse_file(dataset):
    # duckdb-cli (a dev dependency) installs `duckdb` beside this interpreter.
    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or "duckdb"
    result = subprocess.run(
        [cli, str(dataset), "-c", "select count(*) from generations"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "6" in result.stdout.split()


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
