"""Shared fixtures: one LORASCOPE_HOME per test session, tiny-mistral prepared once."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lorascope.cli import quiet_offline_defaults
from lorascope.warehouse import write_rows

quiet_offline_defaults()


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (and database) for every flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness) -> str:
    """The test server's API URL, for `lorascope` processes started by a test."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def home_with_tiny_mistral(folder: Path, tiny_mistral_dir: Path) -> Path:
    """A fresh LORASCOPE_HOME at `folder` that shares the session's prepared tiny-mistral."""
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "tiny-mistral").symlink_to(tiny_mistral_dir)
    return folder


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lorascope_home")


@pytest.fixture(scope="session")
def tiny_mistral_dir(session_home: Path) -> Path:
    from lorascope.models.loader import resolve_model

    return resolve_model("tiny-mistral", home=session_home)


class Interrupted(RuntimeError):
    """A training process cut off (by a test), as a kill or a pre-emption would."""


def interrupt_at(step: int):
    """A trainer `after_report` callback that interrupts once, at the first report at or past
    `step` (after that step's checkpoint); a retry or resume then trains on."""
    fired = []

    def after_report(reported: int) -> None:
        if reported >= step and not fired:
            fired.append(reported)
            raise Interrupted(f"interrupted at step {reported} by the test")

    return after_report


# A whole pipeline on tiny-mistral in seconds: few steps, short generations, few MC questions.
TINY_RUN = {
    "name": "tiny",
    "seed": 0,
    "model": {"source": "tiny-mistral"},
    "data": {"source": "builtin:sciq-format", "max_seq_length": 256},
    "lora": {"rank": 4, "alpha": 8, "num_layers": -1},
    "train": {"iters": 6, "batch_size": 2, "steps_per_report": 2, "steps_per_eval": 4,
              "val_batches": 1, "save_every": 2, "warmup_steps": 1},
    "eval": {"prompts": ["builtin:sciq-format", "ifeval", "ifbench"], "max_tokens": 6,
             "batch_size": 24, "capability_tasks": ["arc_easy"], "capability_limit": 6,
             "test_limit": 24},
}


@pytest.fixture
def tiny_config(tmp_path: Path):
    """Write TINY_RUN (deep-merged with overrides) as YAML; returns the file's path."""
    import copy

    import yaml

    def write(**sections: dict) -> Path:
        config = copy.deepcopy(TINY_RUN)
        for section, values in sections.items():
            if isinstance(values, dict):
                config.setdefault(section, {}).update(values)
            else:
                config[section] = values
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def judge_url(tiny_mistral_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """An mlx_lm.server serving tiny-mistral on loopback; stopped when the module is done."""
    port = free_port()
    log = tmp_path_factory.mktemp("judge_server") / "server.log"
    with serving([sys.executable, "-m", "mlx_lm", "server", "--model", str(tiny_mistral_dir),
                  "--host", "127.0.0.1", "--port", str(port)],
                 f"http://127.0.0.1:{port}/health", log, {**os.environ, "HF_HUB_OFFLINE": "1"},
                 timeout=60):
        yield f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def serving(command: list[str], health_url: str, log: Path, env: dict[str, str],
            timeout: float = 180) -> Iterator[subprocess.Popen]:
    """A server process (its output in `log`), once `health_url` answers; stopped after."""
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(health_url, timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[:4]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield server
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# ---------------------------------------------------------------- instruction data


@pytest.fixture(scope="module")
def tokenizer(tiny_mistral_dir: Path) -> Any:
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from lorascope.models.chat import ensure_chat_template

    # mlx-lm's loader wraps transformers.AutoTokenizer exactly as training does.
    return ensure_chat_template(load_tokenizer(tiny_mistral_dir))


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def chat(user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


# ---------------------------------------------------------------- warehouse


def write_evaluation_rows(path: Path, table: str, rows: list[dict]) -> int:
    """Rows of an evaluation table, in the run's evaluation of the same id (as rows written
    before evaluations existed are migrated)."""
    return write_rows(path, table, [{"evaluation_id": row["run_id"], **row} for row in rows])


def write_comparisons(path: Path, evaluation_id: str, seed: int = 0) -> int:
    """The evaluation's `comparisons`, computed from its rows as the compare step does."""
    from lorascope.config import StatisticsConfig
    from lorascope.evaluation.comparisons import comparison_rows
    from lorascope.warehouse import replace_rows, select_rows

    items = select_rows(path, "paired_items", evaluation_id=evaluation_id)
    run_ids = {row["evaluation_id"]: row["run_id"] for row in items}
    rows = [{"evaluation_id": evaluation_id, "run_id": run_ids.get(evaluation_id), **row}
            for row in comparison_rows(items, set(), StatisticsConfig(resamples=1000), seed)]
    return replace_rows(path, "comparisons", rows, evaluation_id=evaluation_id)
