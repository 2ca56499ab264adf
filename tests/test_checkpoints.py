"""The checkpoint store on real MLX arrays and files: non-finite weights are refused, pruning
keeps the newest valid checkpoints, files and folders are synced, checksums stream."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

from lorascope.config import parse_config
from lorascope.training.checkpoints import (
    NonFiniteCheckpoint,
    _sha256,
    checkpoint_is_valid,
    prune_checkpoints,
    save_checkpoint,
)
from lorascope.training.trainer import CheckpointCallback, TrainingError


def model_and_optimizer() -> tuple[nn.Module, optim.Optimizer]:
    model = nn.Linear(4, 3)
    optimizer = optim.Adam(learning_rate=1e-3)
    optimizer.init(model.trainable_parameters())
    mx.eval(model.parameters(), optimizer.state)
    return model, optimizer


def save(checkpoints: Path, step: int, keep: int = 10, model=None, optimizer=None) -> Path:
    if model is None:
        model, optimizer = model_and_optimizer()
    return save_checkpoint(checkpoints, step, model, optimizer, {}, keep)


def corrupt(checkpoint: Path) -> None:
    (checkpoint / "adapters.safetensors").write_bytes(b"not the saved weights")


def test_nan_in_the_adapter_weights_refuses_the_save_naming_the_step(tmp_path):
    model, optimizer = model_and_optimizer()
    model.weight = mx.full(model.weight.shape, float("nan"))

    with pytest.raises(NonFiniteCheckpoint, match="step 7: NaN or infinity in adapters: weight"):
        save(tmp_path, 7, model=model, optimizer=optimizer)
    assert list(tmp_path.glob("step-*")) == []


def test_infinity_in_the_optimizer_state_refuses_the_save(tmp_path):
    model, optimizer = model_and_optimizer()
    optimizer.state["bias"]["v"] = mx.full((3,), float("inf"))

    with pytest.raises(NonFiniteCheckpoint, match="optimizer state: bias.v"):
        save(tmp_path, 3, model=model, optimizer=optimizer)


def test_the_training_callback_turns_a_refused_save_into_a_training_error(tmp_path):
    model, optimizer = model_and_optimizer()
    model.bias = mx.array([0.0, float("inf"), 0.0])
    config = parse_config({"model": {"source": "tiny-mistral"},
                           "train": {"iters": 4, "save_every": 2, "steps_per_report": 2}})
    callback = CheckpointCallback(model=model, optimizer=optimizer, config=config,
                                  checkpoints=tmp_path, step_offset=0, state={}, sink=None)

    with pytest.raises(TrainingError, match="step 2.*last good checkpoint: none"):
        callback.on_train_loss_report({"iteration": 2, "train_loss": 1.0, "trained_tokens": 8})


def test_pruning_keeps_the_newest_valid_checkpoints(tmp_path):
    for step in (2, 4, 6):
        save(tmp_path, step)

    save(tmp_path, 8, keep=2)

    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000006", "step-0000008"]


def test_pruning_never_deletes_the_last_valid_checkpoint_because_newer_ones_are_corrupt(
    tmp_path,
):
    save(tmp_path, 2)
    for step in (4, 6):
        corrupt(save(tmp_path, step))

    prune_checkpoints(tmp_path, keep=1)

    assert checkpoint_is_valid(tmp_path / "step-0000002")


def test_pruning_skips_a_corrupt_checkpoint_between_valid_ones(tmp_path):
    for step in (2, 4, 6):
        save(tmp_path, step)
    corrupt(tmp_path / "step-0000004")

    prune_checkpoints(tmp_path, keep=2)

    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000002", "step-0000006"]


def test_a_save_syncs_every_file_the_folder_and_then_the_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    checkpoints = tmp_path / "checkpoints"

    save(checkpoints, 2)

    partial = str(checkpoints / ".step-0000002.partial")
    files = {f"{partial}/{name}" for name in
             ("adapters.safetensors", "optimizer.safetensors", "state.json", "COMPLETE")}
    assert files <= set(synced)
    assert synced.index(partial) < synced.index(str(checkpoints))


def test_checksums_stream_a_large_file_instead_of_reading_it_whole(tmp_path):
    big = tmp_path / "big.safetensors"
    big.write_bytes(os.urandom(1 << 20) * 32)  # 32 MiB
    tracemalloc.start()
    try:
        digest = _sha256(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert digest == hashlib.sha256(big.read_bytes()).hexdigest()
    assert peak < 4 << 20
