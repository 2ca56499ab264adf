"""The pipeline flow survives a training failure: Prefect retries the train task, which resumes
from its newest checkpoint instead of starting over."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
from conftest import home_with_tiny_mistral

from lorascope import warehouse
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, tiny_mistral_dir: Path) -> Path:
    return home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)


def interrupt_training_at(monkeypatch: pytest.MonkeyPatch, step: int, marker: Path) -> None:
    """The train task's training process, killed once at `step` after its report and
    checkpoint (test_supervisor.kill_at_step, imported in the child; a retry trains on)."""
    import lorascope.tasks.training
    from lorascope.training.supervisor import train_supervised

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("LORASCOPE_TEST_KILL_AT", str(step))
    monkeypatch.setenv("LORASCOPE_TEST_KILL_MARKER", str(marker))
    monkeypatch.setattr(lorascope.tasks.training, "train_supervised",
                        partial(train_supervised, after_report="test_supervisor:kill_at_step"))


def test_train_task_failing_at_step_k_completes_on_retry_from_the_checkpoint_before_k(
    prefect_harness, tiny_config, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.utilities.asyncutils import run_coro_as_sync

    from lorascope.flows.pipeline import pipeline

    # Reports every 2 steps, checkpoints every 4, validation every 3: a validation row at a
    # step that is not 0, a multiple of 3 minus one, or the last step can only come from
    # mlx-lm's validation at the first iteration of a train() call that started there.
    config = tiny_config(train={"iters": 8, "steps_per_report": 2, "save_every": 4,
                                "steps_per_eval": 3, "keep_checkpoints": 5})
    interrupt_training_at(monkeypatch, 6, tmp_path / "killed-once")

    state = pipeline(str(config), home=str(home), return_state=True)

    assert state.is_completed(), state.message
    run_id = state.result()
    _, rows = warehouse.query(
        warehouse_path(home),
        "select step, split, trained_tokens from train_metrics where run_id = ? order by step",
        [run_id])
    train_steps = [step for step, split, _ in rows if split == "train"]
    valid_steps = [step for step, split, _ in rows if split == "valid"]
    assert train_steps == [2, 4, 6, 8]
    # The retry started at the checkpoint before the failure (4 <= 6), not at step 0.
    resumed_from = 4
    assert valid_steps == [0, 2, resumed_from, 5, 6, 7]
    # trained_tokens continues across the retry instead of restarting from zero.
    tokens = [t for _, split, t in rows if split == "train"]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)

    async def train_task_runs() -> list:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )

    (train_run,) = [t for t in run_coro_as_sync(train_task_runs()) if t.name.startswith("train")]
    assert train_run.run_count == 2
    assert train_run.state.is_completed()


def test_lorascope_resume_continues_a_failed_run_from_its_newest_checkpoint(
    prefect_harness, tiny_config, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import lorascope.flows.pipeline
    from lorascope.cli import main
    from lorascope.tasks.training import train_task

    monkeypatch.setenv("LORASCOPE_HOME", str(home))
    config = tiny_config(train={"iters": 8, "steps_per_report": 2, "save_every": 4,
                                "steps_per_eval": 3})
    # The process dies at step 6 with no retry left: the run is interrupted after the
    # checkpoint at step 4, as when a laptop sleeps through a Prefect retry.
    interrupt_training_at(monkeypatch, 6, tmp_path / "killed-once")
    monkeypatch.setattr(lorascope.flows.pipeline, "train_task", train_task.with_options(retries=0))
    state = lorascope.flows.pipeline.pipeline(str(config), return_state=True)
    assert state.is_failed()
    (run_id, status), = warehouse.query(warehouse_path(home), "select run_id, status from runs")[1]
    assert status == "failed"
    assert (home / "runs" / run_id / "checkpoints" / "step-0000004").is_dir()
    assert not (home / "runs" / run_id / "adapters").exists()

    monkeypatch.undo()  # the real train task again, retries included
    monkeypatch.setenv("LORASCOPE_HOME", str(home))
    assert main(["resume", run_id]) == 0

    _, rows = warehouse.query(
        warehouse_path(home),
        "select step, split from train_metrics where run_id = ? order by step, split", [run_id])
    assert [step for step, split in rows if split == "train"] == [2, 4, 6, 8]
    # As in the retry test above: a validation row at step 4 comes only from the first
    # iteration of a train() call that started there.
    assert [step for step, split in rows if split == "valid"] == [0, 2, 4, 5, 6, 7]
    (status,), = warehouse.query(warehouse_path(home), "select status from runs")[1]
    assert status == "completed"
    assert (home / "runs" / run_id / "adapters" / "adapters.safetensors").is_file()
