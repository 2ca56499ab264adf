"""Training in a supervised child process: metrics, logs and errors reach the caller; a signal
death is a retryable error with the out-of-memory advice; the pipeline's train task retries a
killed training process by itself and the resumed adapters equal an uninterrupted run's, bit
for bit."""

from __future__ import annotations

import json
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.config import ConfigError, load_config
from lorascope.data.records import DataError
from lorascope.paths import warehouse_path
from lorascope.runs import RunContext, heartbeat_path, start_run
from lorascope.training.steps import is_resumable
from lorascope.training.supervisor import TrainingProcessDied, train_supervised
from lorascope.training.trainer import TrainingError

TESTS = Path(__file__).resolve().parent
TRAIN = {"iters": 8, "steps_per_report": 2, "save_every": 2, "steps_per_eval": 4,
         "keep_checkpoints": 10}
# The pipeline's evaluation, as small as it gets: this file is about training.
EVAL = {"prompts": ["test"], "max_tokens": 2, "test_limit": 4, "capability_tasks": [],
        "perplexity_corpora": [], "attention_prompts": 0, "test_loss": False}
KILL_AT, KILL_MARKER = "LORASCOPE_TEST_KILL_AT", "LORASCOPE_TEST_KILL_MARKER"


# Faults, imported by the training child as after_report hooks ("test_supervisor:...").
def kill_at_step(step: int) -> None:
    """SIGKILL this process at the report of step $LORASCOPE_TEST_KILL_AT (after its
    checkpoint); only once when $LORASCOPE_TEST_KILL_MARKER names a file to leave behind."""
    marker = os.environ.get(KILL_MARKER)
    if step == int(os.environ[KILL_AT]) and not (marker and Path(marker).exists()):
        if marker:
            Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)


def fail_with_training_error(step: int) -> None:
    raise TrainingError(f"a deterministic failure at step {step}")


def fail_with_data_error(step: int) -> None:
    raise DataError("train.jsonl", 3, f"unreadable at step {step}")


@pytest.fixture
def child_imports_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def started(folder: Path, tiny_mistral_dir: Path, config_path: Path) -> RunContext:
    home = home_with_tiny_mistral(folder, tiny_mistral_dir)
    return start_run(load_config(config_path), home, log=lambda _: None)


def adapters(context: RunContext) -> dict[str, mx.array]:
    return mx.load(str(context.paths.adapters / "adapters.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> dict[str, Any]:
    """An uninterrupted supervised run: its context, metric rows and log lines."""
    folder = tmp_path_factory.mktemp("reference")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "train": {**TINY_RUN["train"], **TRAIN},
                                      "eval": {**TINY_RUN["eval"], **EVAL}}))
    context = started(folder / "home", tiny_mistral_dir, config)
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    result = train_supervised(context, on_metrics=rows.extend, log=lines.append)
    return {"context": context, "rows": rows, "lines": lines, "result": result}


@pytest.fixture
def config_path(tiny_config) -> Path:
    return tiny_config(train=TRAIN, eval=EVAL)


def test_metric_rows_and_log_lines_of_the_child_reach_the_caller(reference) -> None:
    assert [r["step"] for r in reference["rows"] if r["split"] == "train"] == [2, 4, 6, 8]
    assert reference["result"].steps == 8 and reference["result"].resumed_from_step == 0
    # mlx-lm's own progress lines, printed in the child, are forwarded too, without colours.
    assert any("8/8" in line for line in reference["lines"]), reference["lines"][-5:]
    assert not any("\x1b" in line for line in reference["lines"])


def test_the_child_leaves_a_heartbeat_with_its_pid_and_last_step(reference) -> None:
    beat = json.loads(heartbeat_path(reference["context"].paths.root).read_text())
    assert beat["step"] == 8
    assert beat["pid"] != os.getpid()


def test_a_signal_death_is_a_retryable_error_with_the_out_of_memory_advice(
    tmp_path: Path, tiny_mistral_dir: Path, config_path: Path, child_imports_tests,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KILL_AT, "4")
    context = started(tmp_path / "home", tiny_mistral_dir, config_path)
    with pytest.raises(TrainingProcessDied) as raised:
        train_supervised(context, on_metrics=lambda _: None, log=lambda _: None,
                         after_report="test_supervisor:kill_at_step")
    message = str(raised.value)
    assert "SIGKILL" in message and "after step 4" in message and "train.batch_size" in message
    assert is_resumable(raised.value)


def test_an_error_in_the_child_is_raised_again_with_its_type_and_is_not_retried(
    tmp_path: Path, tiny_mistral_dir: Path, config_path: Path, child_imports_tests,
) -> None:
    context = started(tmp_path / "home", tiny_mistral_dir, config_path)
    with pytest.raises(TrainingError, match="deterministic failure at step 2") as raised:
        train_supervised(context, on_metrics=lambda _: None, log=lambda _: None,
                         after_report="test_supervisor:fail_with_training_error")
    assert "Traceback" in str(raised.value.__cause__)
    assert not is_resumable(raised.value)


def test_an_error_whose_class_takes_other_arguments_keeps_its_type_and_fields(
    tmp_path: Path, tiny_mistral_dir: Path, config_path: Path, child_imports_tests,
) -> None:
    context = started(tmp_path / "home", tiny_mistral_dir, config_path)
    with pytest.raises(DataError, match="train.jsonl:3: unreadable at step 2") as raised:
        train_supervised(context, on_metrics=lambda _: None, log=lambda _: None,
                         after_report="test_supervisor:fail_with_data_error")
    assert (raised.value.file, raised.value.line, raised.value.exit_code) == ("train.jsonl", 3, 4)


@pytest.mark.parametrize(("error", "retried"), [
    (TrainingProcessDied("killed by SIGKILL"), True), (OSError("disk busy"), True),
    (TrainingError("loss became nan"), False), (ConfigError("bad key"), False),
    (DataError("train.jsonl", 3, "no messages"), False),
])
def test_the_train_task_retries_a_killed_process_but_not_a_failure_to_fix(
    error: BaseException, retried: bool,
) -> None:
    from prefect.states import Failed

    from lorascope.tasks.training import _retry_if_resumable

    assert _retry_if_resumable(None, None, Failed(data=error)) is retried


@pytest.mark.slow
def test_the_flow_retries_a_killed_training_process_and_matches_an_uninterrupted_run(
    prefect_harness, tmp_path: Path, tiny_mistral_dir: Path, config_path: Path,
    child_imports_tests, monkeypatch: pytest.MonkeyPatch, reference,
) -> None:
    import lorascope.tasks.training
    from lorascope.flows.pipeline import pipeline

    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    monkeypatch.setenv(KILL_AT, "6")
    monkeypatch.setenv(KILL_MARKER, str(tmp_path / "killed-once"))
    monkeypatch.setattr(lorascope.tasks.training, "train_supervised",
                        partial(train_supervised, after_report="test_supervisor:kill_at_step"))

    state = pipeline(str(config_path), home=str(home), return_state=True)

    assert state.is_completed(), state.message
    assert (tmp_path / "killed-once").exists(), "the training process was never killed"
    run_id = state.result()
    tuned = mx.load(str(home / "runs" / run_id / "adapters" / "adapters.safetensors"))
    expected = adapters(reference["context"])
    assert tuned.keys() == expected.keys()
    assert all(mx.array_equal(tuned[name], expected[name]).item() for name in expected)
    _, rows = warehouse.query(warehouse_path(home), "select status from runs")
    assert rows == [("completed",)]
