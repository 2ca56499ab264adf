"""Bad data stops the real pipeline flow before training, naming the row; fixed data passes.

10 000 chat rows in one JSONL file (split by the flow), run through `flows.pipeline.pipeline`
on tiny-mistral under a Prefect test server, with a real DuckDB warehouse.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.cli import main
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow

ROWS = 10_000
BAD_LINE = 7


def chat_row(i: int, answer: str | None = None) -> dict[str, Any]:
    return {"messages": [
        {"role": "user", "content": f"What is {i} times {i + 3}?"},
        {"role": "assistant", "content": f"It is {i * (i + 3)}." if answer is None else answer},
    ]}


def write_chats(path: Path, bad_line: str | None = None) -> Path:
    lines = [json.dumps(chat_row(i)) for i in range(ROWS)]
    if bad_line is not None:
        lines[BAD_LINE - 1] = bad_line
    path.write_text("\n".join(lines) + "\n")
    return path


def run_pipeline(home: Path, source: Path, name: str) -> dict[str, Any]:
    from lorascope.flows.pipeline import pipeline

    config = copy.deepcopy(TINY_RUN)
    config["name"] = name
    config["data"]["source"] = str(source)
    config_path = source.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config))
    state = pipeline(str(config_path), home=str(home), return_state=True)
    (run_id,) = [row[0] for row in warehouse.query(
        warehouse_path(home), "select run_id from runs where name = ?", [name])[1]]
    return {"state": state, "run_id": run_id, "source": source, "home": home,
            "config": config_path}


@pytest.fixture(scope="module")
def flow_home(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> Path:
    home = home_with_tiny_mistral(tmp_path_factory.mktemp("validate_flow_home"),
                                  tiny_mistral_dir)
    return home


@pytest.fixture(scope="module")
def rejected_run(prefect_harness: None, flow_home: Path) -> dict[str, Any]:
    """Line 7 has an empty assistant answer: well-formed JSON, but bad training data."""
    source = write_chats(flow_home / "chats.jsonl", json.dumps(chat_row(6, answer="")))
    return run_pipeline(flow_home, source, "bad-row")


@pytest.fixture(scope="module")
def unreadable_run(prefect_harness: None, flow_home: Path) -> dict[str, Any]:
    """Line 7 is broken JSON: the data cannot even be read."""
    source = write_chats(flow_home / "broken.jsonl", '{"messages": [{"role": "user",')
    return run_pipeline(flow_home, source, "broken-row")


def rows(run: dict[str, Any], sql: str) -> list[tuple]:
    return warehouse.query(warehouse_path(run["home"]), sql, [run["run_id"]])[1]


def test_bad_row_fails_the_validation_task_naming_file_and_line(rejected_run) -> None:
    state = rejected_run["state"]
    assert state.is_failed()
    with pytest.raises(Exception, match="data validation failed") as caught:
        state.result()
    assert f"first at {rejected_run['source']}:{BAD_LINE} (no assistant turn is empty)" in str(
        caught.value
    )


def test_validation_report_lists_the_bad_row(rejected_run) -> None:
    report = (rejected_run["home"] / "runs" / rejected_run["run_id"] / "validation.md").read_text()
    where = f"`{rejected_run['source']}:{BAD_LINE}`"
    assert f"{where} empty_assistant — no assistant turn is empty" in report
    assert "## Preparation" in report


def test_warehouse_holds_the_failure_and_no_training_step(rejected_run) -> None:
    failed = rows(rejected_run, "select column_name, unexpected_count, examples "
                                "from validations where run_id = ? and not success")
    assert [(column, count) for column, count, _ in failed] == [("empty_assistant", 1)]
    (example,) = json.loads(failed[0][2])
    assert (example["file"], example["line"]) == (str(rejected_run["source"]), BAD_LINE)
    assert rows(rejected_run, "select count(*) from train_metrics where run_id = ?") == [(0,)]
    ((status, error),) = rows(rejected_run, "select status, error from runs where run_id = ?")
    assert status == "failed" and "DataValidationFailed" in error


def test_preparation_counts_land_in_the_warehouse(rejected_run) -> None:
    counts = dict(rows(rejected_run, "select split, rows_out from data_preparation "
                                     "where run_id = ?"))
    assert counts["all"] == ROWS
    assert counts["train"] + counts["valid"] + counts["test"] == ROWS
    assert counts["valid"] == counts["test"] == ROWS // 10


def test_unreadable_row_fails_before_training_naming_file_and_line(unreadable_run) -> None:
    state = unreadable_run["state"]
    assert state.is_failed()
    with pytest.raises(Exception, match=rf"broken\.jsonl:{BAD_LINE}: broken JSON"):
        state.result()
    failed = rows(unreadable_run, "select expectation, examples from validations "
                                  "where run_id = ? and not success")
    assert [name for name, _ in failed] == ["data_is_readable"]
    assert json.loads(failed[0][1])[0]["line"] == BAD_LINE
    assert rows(unreadable_run, "select count(*) from train_metrics where run_id = ?") == [(0,)]
    assert rows(unreadable_run, "select status from runs where run_id = ?") == [("failed",)]


def test_the_same_file_with_the_line_fixed_passes_lorascope_validate(
    rejected_run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed = write_chats(rejected_run["home"] / "fixed.jsonl")
    monkeypatch.setenv("LORASCOPE_HOME", str(rejected_run["home"]))
    assert main(["validate", str(rejected_run["config"]), "--data", str(fixed)]) == 0
    out = capsys.readouterr().out
    assert "❌" not in out and "✅" in out


def test_lorascope_validate_on_the_bad_file_exits_1_naming_the_line(
    rejected_run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORASCOPE_HOME", str(rejected_run["home"]))
    assert main(["validate", str(rejected_run["config"])]) == 4  # bad data
    assert f"`{rejected_run['source']}:{BAD_LINE}` empty_assistant" in capsys.readouterr().out


def test_lorascope_validate_on_broken_json_prints_one_line_and_exits_1(
    unreadable_run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORASCOPE_HOME", str(unreadable_run["home"]))
    assert main(["validate", str(unreadable_run["config"])]) == 4  # bad data
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"lorascope: {unreadable_run['source']}:{BAD_LINE}: broken JSON")
