"""A run whose process was killed is shown as dead: `interrupted` in the warehouse once its
lock is free, Crashed in Prefect once its heartbeats stop (against a real Prefect server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, home_with_tiny_mistral, serving

from lorascope import warehouse
from lorascope.paths import RunPaths, warehouse_path
from lorascope.run_lock import run_lock
from lorascope.runs import heartbeat_path, mark_interrupted, utc_now

# Prefect's shortest heartbeat period is 30 s; the automation waits WITHIN after the last one,
# and the server evaluates it every 5 s (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY).
HEARTBEAT_SECONDS, WITHIN = 30, 45
CRASHED_WITHIN = WITHIN + 5 + 10  # seconds after the kill; 10 s for a busy machine


def alive(pid: int) -> bool:
    """Running (a zombie no one has reaped yet counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` on a free loopback port, with its own database."""
    port = free_port()
    folder = tmp_path_factory.mktemp("prefect_server")
    env = {**os.environ, "PREFECT_HOME": str(folder), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    url = f"http://127.0.0.1:{port}/api"
    with serving([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                  "--port", str(port), "--no-ui"], f"{url}/health", folder / "server.log", env):
        yield url


def test_the_crash_automation_is_created_once_however_often_it_is_ensured(prefect_server) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from lorascope.tasks.training import CRASH_AUTOMATION, ensure_crash_automation

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        first = ensure_crash_automation(within_seconds=WITHIN)
        again = ensure_crash_automation(within_seconds=WITHIN)
        with get_client(sync_client=True) as client:
            found = client.read_automations_by_name(CRASH_AUTOMATION)
    assert first.id == again.id and [a.id for a in found] == [first.id]


def test_a_running_run_and_evaluation_whose_lock_is_free_are_marked_interrupted(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = warehouse_path(home)
    warehouse.write_rows(path, "runs", [{"run_id": "dead", "status": "running",
                                         "started_at": utc_now()}])
    warehouse.write_rows(path, "evaluations", [
        {"evaluation_id": "dead-eval-1", "run_id": "dead", "status": "running"},
        {"evaluation_id": "dead-eval-0", "run_id": "dead", "status": "completed"}])
    RunPaths.of("dead", home).root.mkdir(parents=True)

    assert mark_interrupted(home) == ["dead", "dead-eval-1"]
    assert warehouse.query(path, "select status from runs")[1] == [("interrupted",)]
    assert warehouse.query(path, "select evaluation_id, status from evaluations order by 1")[1] \
        == [("dead-eval-0", "completed"), ("dead-eval-1", "interrupted")]


def test_a_running_run_whose_lock_is_held_is_left_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    warehouse.write_rows(warehouse_path(home), "runs", [
        {"run_id": "alive", "status": "running", "started_at": utc_now()}])
    with run_lock(RunPaths.of("alive", home).root, "test"):
        marked = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from lorascope.runs "
             "import mark_interrupted; print(mark_interrupted(Path(sys.argv[1])))", str(home)],
            capture_output=True, text=True, timeout=120, check=True).stdout
    assert marked.strip() == "[]"
    assert warehouse.query(warehouse_path(home), "select status from runs")[1] == [("running",)]


@pytest.mark.slow
def test_a_killed_flow_run_is_interrupted_in_sql_and_crashed_in_prefect(
    prefect_server, tmp_path: Path, tiny_mistral_dir: Path, tiny_config,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from lorascope.tasks.training import ensure_crash_automation

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        ensure_crash_automation(within_seconds=WITHIN)
    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    config = tiny_config(train={"iters": 100000, "save_every": 2, "steps_per_eval": 100000})
    env = {**os.environ, "LORASCOPE_HOME": str(home), "PREFECT_API_URL": prefect_server,
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    flow = subprocess.Popen([sys.executable, "-m", "lorascope.cli", "run", str(config)], env=env,
                            stdout=(tmp_path / "flow.log").open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        beats = list((home / "runs").glob(f"*/{heartbeat_path(Path()).name}"))
        while not (beats and json.loads(beats[0].read_text())["step"]):
            assert flow.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "flow.log").read_text()[-3000:]
            time.sleep(0.5)
            beats = list((home / "runs").glob(f"*/{heartbeat_path(Path()).name}"))
        training = json.loads(beats[0].read_text())["pid"]
    finally:
        flow.send_signal(signal.SIGKILL)
        flow.wait(timeout=30)
    killed = time.monotonic()

    # The training child notices that its supervisor died and stops too.
    while alive(training) and time.monotonic() < killed + 15:
        time.sleep(0.2)
    assert not alive(training)

    run_id = beats[0].parent.name
    assert mark_interrupted(home) == [run_id]
    (status, error), = warehouse.query(warehouse_path(home),
                                       "select status, error from runs")[1]
    assert status == "interrupted" and "last heartbeat" in error

    with (temporary_settings({PREFECT_API_URL: prefect_server}),
          get_client(sync_client=True) as client):
        while True:
            (flow_run,) = client.read_flow_runs()
            if flow_run.state.is_crashed() or time.monotonic() > killed + CRASHED_WITHIN:
                break
            time.sleep(1)
    print(f"flow run {flow_run.state.name} {time.monotonic() - killed:.0f} s after the kill")
    assert flow_run.state.is_crashed(), flow_run.state
