"""Deployments the Prefect way: parameters checked before anything runs, flow runs named after
their run, a notification line when a run fails or its gate trips, and a sweep whose members
run on two process workers of a real Prefect server (deployed from prefect.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, free_port, home_with_tiny_mistral, serving, stop_process

from lorascope import warehouse
from lorascope.config import ConfigError
from lorascope.deployments import (
    ParameterError,
    check_run_parameters,
    notifications_path,
    notify_failure,
    run_name,
)
from lorascope.evaluation.gate import CapabilityRegressionError
from lorascope.experiments import MemberFailed
from lorascope.paths import warehouse_path

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_a_deployment_parameter_outside_lorascope_home_is_refused_naming_it(
        tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORASCOPE_HOME", str(tmp_path / "home"))
    with pytest.raises(ParameterError, match=r"^parameter home: /etc is outside \$LORASCOPE_HOME"):
        check_run_parameters(str(tiny_config()), None, "/etc")


def test_a_config_outside_the_project_and_lorascope_home_is_refused(
        tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORASCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParameterError, match="^parameter config_path: "):
        check_run_parameters(str(tiny_config()), None, None)


def test_a_bad_override_is_refused_by_the_config_schema(
        tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORASCOPE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="train.iterz"):
        check_run_parameters(str(tiny_config()), ["train.iterz=3"], None)


def test_a_pipeline_flow_run_is_named_after_its_run_id(tiny_config) -> None:
    name = run_name({"config_path": str(tiny_config()), "overrides": ["lora.rank=8"]})
    assert name.startswith("tiny-") and name != run_name({"config_path": str(tiny_config())})
    assert run_name({"config_path": "nosuch.yaml"}) == "pipeline/nosuch"


def test_a_tripped_gate_writes_a_notification_line_with_exit_code_3(
        prefect_harness, tmp_path: Path) -> None:
    from prefect import flow

    @flow(on_failure=[notify_failure])
    def gated(home: str) -> None:
        raise CapabilityRegressionError("capability regression beyond eval.gate_max_drop=0.05")

    state = gated(str(tmp_path), return_state=True)
    assert state.is_failed()
    (line,) = notifications_path(tmp_path).read_text().splitlines()
    record = json.loads(line)
    assert (record["exit_code"], record["state"]) == (3, "Failed")
    assert "capability regression" in record["message"]


def test_a_sweep_on_a_pool_without_the_pipeline_deployment_says_how_to_deploy_it(
        prefect_harness) -> None:
    from lorascope.flows.experiments import pipeline_deployment_on

    with pytest.raises(MemberFailed, match="prefect deploy --all"):
        pipeline_deployment_on("nosuch-pool")


# ---------------------------------------------------------------- a sweep on two workers


def wait_until(ready, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {timeout} s" + (
                f":\n{log.read_text()[-3000:]}" if log and log.exists() else ""))
        time.sleep(0.5)


@pytest.fixture(scope="module")
def work_pool(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path):
    """A real Prefect server on a free loopback port, prefect.yaml deployed to its `lorascope`
    process pool, and two workers taking one flow run each; yields (env, worker logs)."""
    folder = tmp_path_factory.mktemp("work_pool")
    home = home_with_tiny_mistral(folder / "home", tiny_mistral_dir)
    api_url = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_API_URL": api_url,
           "LORASCOPE_HOME": str(home), "LORASCOPE_PROJECT": str(ROOT),
           "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    with serving([PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                  api_url.split(":")[-1].split("/")[0]], f"{api_url}/health",
                 folder / "server.log", env, timeout=120):
        for command in (["work-pool", "create", "lorascope", "--type", "process"],
                        ["--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"]):
            subprocess.run([PREFECT, *command], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=300)
        logs, workers = {}, []
        try:
            for worker in ("worker-a", "worker-b"):
                logs[worker] = folder / f"{worker}.log"
                workers.append(subprocess.Popen(
                    [PREFECT, "worker", "start", "--pool", "lorascope", "--limit", "1",
                     "--name", worker], stdout=logs[worker].open("w"),
                    stderr=subprocess.STDOUT, env=env, cwd=folder))
            yield env, logs
        finally:
            for process in reversed(workers):
                stop_process(process)


def api(env: dict[str, str], route: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/{route}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def pool_sweep(work_pool) -> dict:
    """`lorascope sweep ... --work-pool lorascope` over lora.rank 2 and 4 on tiny-mistral."""
    env, logs = work_pool
    home = Path(env["LORASCOPE_HOME"])
    config = {**yaml.safe_load(yaml.safe_dump(TINY_RUN)), "name": "pool"}
    config["train"].update(iters=2, save_every=2, steps_per_report=2, steps_per_eval=2)
    config["eval"].update(prompts=["builtin:sciq-format"], max_tokens=4, test_limit=4,
                          test_loss=False, capability_tasks=[], attention_prompts=0)
    path = home / "configs" / "pool.yaml"  # a deployment may only read inside LORASCOPE_HOME
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "lorascope.cli", "sweep", str(path), "lora.rank", "2", "4",
         "--work-pool", "lorascope"], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + "".join(
        log.read_text()[-2000:] for log in logs.values())
    _, members = warehouse.query(
        warehouse_path(home), "select e.run_id, r.status from experiments e "
        "join runs r using (run_id) order by position")
    return {"env": env, "logs": logs, "members": members}


@pytest.mark.slow
def test_a_sweep_on_a_work_pool_runs_its_members_on_different_workers(pool_sweep) -> None:
    members, logs = pool_sweep["members"], pool_sweep["logs"]
    assert [status for _, status in members] == ["completed", "completed"]
    flow_runs = api(pool_sweep["env"], "flow_runs/filter",
                    {"flow_runs": {"name": {"any_": [run_id for run_id, _ in members]}}})
    assert {run["state"]["type"] for run in flow_runs} == {"COMPLETED"}
    workers = {worker for run in flow_runs for worker, log in logs.items()
               if run["id"] in log.read_text()}
    assert workers == {"worker-a", "worker-b"}, {w: log.read_text()[-1500:]
                                                 for w, log in logs.items()}


@pytest.mark.slow
def test_each_member_held_its_runs_one_slot_concurrency_limit(pool_sweep) -> None:
    limits = api(pool_sweep["env"], "v2/concurrency_limits/filter", {})
    held = {limit["name"]: (limit["limit"], limit["active_slots"]) for limit in limits
            if limit["name"].startswith("lorascope-run-")}
    assert held == {f"lorascope-run-{run_id}": (1, 0) for run_id, _ in pool_sweep["members"]}


@pytest.mark.slow
def test_a_second_writer_of_a_run_waits_for_its_slot_instead_of_failing(pool_sweep) -> None:
    from prefect.concurrency.sync import concurrency
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = pool_sweep["env"]
    run_id = pool_sweep["members"][0][0]
    parameters = {"config_path": str(Path(env["LORASCOPE_HOME"]) / "configs" / "pool.yaml"),
                  "overrides": ["lora.rank=2", "name=pool-rank2"]}
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with concurrency(f"lorascope-run-{run_id}", strict=True):  # another writer holds it
            subprocess.run([PREFECT, "deployment", "run", "lorascope-pipeline/pipeline",
                            "--params", json.dumps(parameters)], env=env, check=True,
                           capture_output=True, timeout=120)

            def running() -> list[dict]:
                return api(env, "flow_runs/filter", {"flow_runs": {
                    "name": {"any_": [run_id]}, "state": {"type": {"any_": ["RUNNING"]}}}})

            wait_until(running, "the second writer's flow run", 120)
            time.sleep(10)  # long enough to start the run's first task, were it not queued
            (second,) = running()
            started = api(env, "task_runs/filter",
                          {"flow_runs": {"id": {"any_": [second["id"]]}}})
            assert started == []
        wait_until(lambda: api(env, "flow_runs/filter", {"flow_runs": {
            "id": {"any_": [second["id"]]}, "state": {"type": {"any_": ["COMPLETED"]}}}}),
            "the second writer, once the slot was free", 180)


@pytest.mark.slow
def test_a_deployment_run_with_home_elsewhere_fails_naming_the_parameter(pool_sweep) -> None:
    env = pool_sweep["env"]
    subprocess.run([PREFECT, "deployment", "run", "lorascope-pipeline/pipeline",
                    "--param", "home=/etc", "--watch"], env=env, capture_output=True,
                   timeout=300)
    (record,) = [json.loads(line) for line in
                 notifications_path(Path(env["LORASCOPE_HOME"])).read_text().splitlines()]
    assert (record["state"], record["exit_code"]) == ("Failed", 2)
    assert "parameter home: /etc is outside $LORASCOPE_HOME" in record["message"]


def test_prefect_yaml_deploys_every_lorascope_flow_to_the_process_pool() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entrypoints = {d["name"]: d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {"pipeline": "flows/pipeline.py:pipeline",
                           "nightly": "flows/pipeline.py:pipeline",
                           "reevaluate": "flows/evaluation.py:reevaluate",
                           "sweep": "flows/experiments.py:sweep"}
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"lorascope"}
