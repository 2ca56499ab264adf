"""The command line: every user-facing failure is one line on stderr naming the problem, no
traceback, and the documented exit code (lorascope.errors.EXIT_CODES). Real `lorascope`
processes; the ones that run flows talk to the session's Prefect test server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.errors import EXIT_CODES
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> Path:
    return home_with_tiny_mistral(tmp_path_factory.mktemp("cli_home"), tiny_mistral_dir)


@pytest.fixture(scope="module")
def api_url(prefect_api_url: str) -> str:
    return prefect_api_url


def lorascope(home: Path, *args: str, api_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LORASCOPE_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run([sys.executable, "-m", "lorascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=900)


def write_config(folder: Path, name: str, **sections: dict) -> Path:
    config = {**yaml.safe_load(yaml.safe_dump(TINY_RUN)), "name": name}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def failure_line(result: subprocess.CompletedProcess) -> str:
    """The one line lorascope printed about the failure; asserts there is no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("lorascope: ")]
    assert len(ours) == 1, result.stderr[-3000:]
    return ours[0]


def test_exit_codes_are_documented_in_the_help() -> None:
    result = subprocess.run([sys.executable, "-m", "lorascope.cli", "--help"],
                            capture_output=True, text=True, timeout=120)
    for code, meaning in EXIT_CODES.items():
        assert f"  {code}  {meaning}" in result.stdout


def test_a_missing_config_exits_2_before_any_prefect_server_starts(tmp_path: Path) -> None:
    result = lorascope(tmp_path, "run", str(tmp_path / "nosuch.yaml"))
    assert result.returncode == 2
    assert failure_line(result) == f"lorascope: {tmp_path / 'nosuch.yaml'}: config file not found"
    assert "temporary server" not in result.stderr


def test_a_mistyped_key_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("train: {iterz: 3}\n")
    result = lorascope(tmp_path, "run", str(config))
    assert result.returncode == 2
    assert "train.iterz" in failure_line(result)


def test_an_unknown_run_exits_2(tmp_path: Path) -> None:
    result = lorascope(tmp_path, "resume", "no-such-run")
    assert result.returncode == 2
    assert "no run 'no-such-run'" in failure_line(result)


def test_invalid_data_exits_4_naming_file_line_and_rule(
    home: Path, api_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "chats.jsonl"
    rows = [f'{{"messages": [{{"role": "user", "content": "question {i}"}}, '
            f'{{"role": "assistant", "content": "answer {i}"}}]}}' for i in range(12)]
    rows[4] = ('{"messages": [{"role": "user", "content": "q"}, '
               '{"role": "assistant", "content": ""}]}')
    data.write_text("\n".join(rows) + "\n")
    config = write_config(tmp_path, "bad-data", data={"source": str(data)})
    result = lorascope(home, "run", str(config), api_url=api_url)
    assert result.returncode == 4
    line = failure_line(result)
    assert line.startswith("lorascope: data validation failed")
    assert f"{data}:5" in line and "no assistant turn is empty" in line


def test_a_missing_model_exits_5(home: Path, api_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, "no-model", model={"source": "no_such_model"})
    result = lorascope(home, "run", str(config), api_url=api_url)
    assert result.returncode == 5
    assert "model source 'no_such_model'" in failure_line(result)


def test_a_diverging_training_exits_6_with_what_to_change(
    home: Path, api_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "diverges", train={
        "learning_rate": 1e30, "warmup_steps": 0, "lr_schedule": "constant"})
    result = lorascope(home, "run", str(config), api_url=api_url)
    assert result.returncode == 6
    assert "Lower train.learning_rate" in failure_line(result)


def test_a_tripped_capability_gate_exits_3_after_writing_the_report(
    home: Path, api_url: str, tmp_path: Path
) -> None:
    # Training hard enough to scramble the tiny model, and a gate that allows no drop at all.
    config = write_config(
        tmp_path, "gated",
        train={"learning_rate": 0.05, "iters": 8, "save_every": 4, "steps_per_eval": 8},
        lora={"rank": 16, "alpha": 64},
        eval={"gate": "fail", "gate_max_drop": 0.0, "gate_require_ci": False,
              "capability_limit": 24, "attention_prompts": 0,
              "prompts": ["builtin:sciq-format"], "test_loss": False, "perplexity_limit": 0},
    )
    result = lorascope(home, "run", str(config), api_url=api_url)
    assert result.returncode == 3, result.stderr[-3000:]
    assert ("regression beyond eval.gate_max_drop=0.0 (eval.gate_families: capability): "
            "capability arc_easy") in failure_line(result)
    (report,) = (home / "runs").glob("gated-*/report.md")
    assert "## Regression gate" in report.read_text()


def test_a_failed_warehouse_query_exits_7(home: Path) -> None:
    warehouse.connect(warehouse_path(home)).close()
    result = lorascope(home, "sql", "select * from no_such_table")
    assert result.returncode == 7
    assert "no_such_table" in failure_line(result)


def test_a_query_of_only_comments_exits_7_saying_so(home: Path) -> None:
    warehouse.connect(warehouse_path(home)).close()
    result = lorascope(home, "sql", "-- which prompts regressed?")
    assert result.returncode == 7
    assert "returned no result: is it only comments?" in failure_line(result)


def test_an_unknown_saved_query_exits_1_listing_the_saved_ones(home: Path) -> None:
    result = lorascope(home, "sql", "--saved", "no_such_query")
    assert result.returncode == 1
    assert "No saved query 'no_such_query'; available:" in failure_line(result)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = lorascope(tmp_path, "--debug", "run", str(tmp_path / "nosuch.yaml"))
    assert result.returncode == 1  # Python's own exit status for an uncaught exception
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_re_evaluating_a_run_without_trained_adapters_exits_2_saying_what_to_do(
    tmp_path: Path,
) -> None:
    from lorascope.config import dump_config, parse_config
    from lorascope.paths import RunPaths
    from lorascope.runs import run_id_for

    config = parse_config(TINY_RUN)
    paths = RunPaths.of(run_id_for(config), tmp_path)
    paths.root.mkdir(parents=True)
    paths.config.write_text(dump_config(config))
    paths.run_info.write_text('{"model_path": "m", "data_hash": "h"}')
    result = lorascope(tmp_path, "eval", run_id_for(config))
    assert result.returncode == 2
    assert f"lorascope resume {run_id_for(config)}" in failure_line(result)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":
                children.setdefault(int(ppid), set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop, code, by", [
    (signal.SIGTERM, 143, "SIGTERM"),  # `kill PID`: to lorascope alone
    (signal.SIGINT, 130, "Ctrl-C (SIGINT)"),  # a terminal's Ctrl-C: to its whole process group
], ids=["sigterm", "ctrl-c"])
def test_a_stopped_run_ends_with_its_prefect_server_and_training_process_marked_interrupted(
    tiny_mistral_dir: Path, tmp_path: Path, stop: signal.Signals, code: int, by: str
) -> None:
    # no PREFECT_API_URL: the run starts Prefect's temporary server, a child process
    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    config = write_config(tmp_path, "stopped", train={"iters": 400, "save_every": 2})
    env = {**os.environ, "LORASCOPE_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        # As a shell starts it in a terminal: its own process group, SIGINT not ignored (a
        # non-interactive shell's background jobs, CI's perhaps, inherit SIGINT ignored).
        process = subprocess.Popen([sys.executable, "-m", "lorascope.cli", "run", str(config)],
                                   stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
                                   start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 600
        while "step 2/400 train loss" not in log.read_text():  # training in its own process
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        below = descendants(process.pid)
        assert len(below) >= 2, below  # the server and the training process at least
        if stop == signal.SIGINT:
            os.killpg(process.pid, stop)
        else:
            process.send_signal(stop)
        returned = process.wait(timeout=120)
    finally:
        process.kill()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [pid for pid in below if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, log.read_text()[-3000:]
    assert returned == code and f"lorascope: stopped by {by.split()[0]}" in log.read_text()
    ((run_id, status, error),) = warehouse.query(
        warehouse_path(home), "select run_id, status, error from runs where name = 'stopped'")[1]
    assert (status, error) == ("interrupted", f"interrupted by {by}; `lorascope resume "
                                              f"{run_id}` continues from its newest checkpoint")
