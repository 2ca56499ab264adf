"""train.pad_to_multiple: batches padded tighter than mlx-lm's 1 + 32k train the same; so do
lorascope's batches with target_loss (logits only at the counted targets)."""

from __future__ import annotations

from functools import partial
from itertools import islice
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from lorascope.models.heads import counted_positions
from lorascope.training.trainer import (
    collate,
    default_loss_targets,
    resumable_batches,
    resume_conflicts,
    target_loss,
)


def examples(lengths: list[int]) -> list[tuple[list[int], int]]:
    rng = np.random.default_rng(0)
    return [(rng.integers(1, 500, n).tolist(), n // 3) for n in lengths]


@pytest.mark.parametrize(("longest", "pad_to", "width"),
                         [(10, 8, 17), (16, 8, 17), (17, 8, 25), (40, 32, 65), (40, 16, 49)])
def test_collate_pads_to_one_plus_a_multiple_of_pad_to(longest: int, pad_to: int,
                                                       width: int) -> None:
    tokens, _ = collate(examples([5, longest]), 2048, pad_to)
    assert tokens.shape == (2, width)


def test_collate_keeps_a_padding_position_past_the_longest_row() -> None:
    # the target default_loss counts one past each row's end must exist in the batch
    tokens, bounds = collate(examples([16, 16]), 2048, 8)
    assert tokens.shape[1] == 17 and tokens[:, 16].tolist() == [0, 0]
    assert bounds[:, 1].tolist() == [16, 16]


def test_pad_to_changes_only_the_width_of_the_batches() -> None:
    data = examples([int(n) for n in np.random.default_rng(1).integers(8, 90, 24)])
    tight = resumable_batches(data, 4, 2048, loop=True, seed=3, start=2, pad_to=8)
    wide = resumable_batches(data, 4, 2048, loop=True, seed=3, start=2, pad_to=32)
    for (tokens, bounds), (wide_tokens, wide_bounds) in islice(zip(tight, wide, strict=True), 12):
        assert tokens.shape[1] <= wide_tokens.shape[1]
        assert tokens.tolist() == wide_tokens[:, : tokens.shape[1]].tolist()
        assert bounds.tolist() == wide_bounds.tolist()


def test_a_changed_pad_to_multiple_does_not_block_resume() -> None:
    saved = {"train": {"iters": 10}}  # a checkpoint written before the setting existed
    assert resume_conflicts(saved, {"train": {"iters": 10, "pad_to_multiple": 8}}) == []


def mlx_lm_losses(model_dir: Path, pad_to: int | None, steps: int,
                  targets_only: bool = False) -> tuple[list[float], set]:
    """Per-step training losses of mlx-lm's train() on mlx-lm's own batches (seeded), as
    mlx-lm pads them (pad_to None) or re-padded by lorascope's collate; and their widths.
    `targets_only`: with lorascope's target_loss (logits only at the counted targets)."""
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import TrainingArgs, default_loss, iterate_batches, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from lorascope.models.loader import load_model

    model, _ = load_model(model_dir)
    mx.random.seed(0)
    model.freeze()
    linear_to_lora_layers(model, -1, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    widths: set[int] = set()

    def batches(dataset, batch_size, max_seq_length, loop=False, comm_group=None):
        for tokens, bounds in iterate_batches(dataset, batch_size, max_seq_length, loop=loop,
                                              seed=0):
            if pad_to is not None:
                rows = [(tokens[i, :length].tolist(), offset)
                        for i, (offset, length) in enumerate(bounds.tolist())]
                tokens, bounds = collate(rows, max_seq_length, pad_to)
            widths.add(tokens.shape[1])
            if targets_only:
                counted = default_loss_targets(np.array(bounds), tokens.shape[1])
                yield tokens, bounds, mx.array(counted_positions(counted))
            else:
                yield tokens, bounds

    losses: list[float] = []

    class Losses:
        def on_train_loss_report(self, info: dict) -> None:
            losses.append(info["train_loss"])

        def on_val_loss_report(self, info: dict) -> None:
            pass

    data = examples([int(n) for n in np.random.default_rng(2).integers(6, 60, 24)])
    args = TrainingArgs(batch_size=4, iters=steps, steps_per_report=1, steps_per_save=steps + 1,
                        adapter_file=str(model_dir.parent / f"scratch-{pad_to}.safetensors"))
    train(model=model, optimizer=optim.Adam(learning_rate=1e-3), train_dataset=data,
          args=args, iterate_batches=partial(batches), training_callback=Losses(),
          loss=target_loss if targets_only else default_loss)
    return losses, widths


def test_padding_to_8_trains_with_mlx_lm_losses_step_by_step(tiny_mistral_dir: Path,
                                                            tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.symlink_to(tiny_mistral_dir)
    theirs, their_widths = mlx_lm_losses(model_dir, None, 6)
    ours, our_widths = mlx_lm_losses(model_dir, 8, 6)
    assert our_widths - their_widths  # batches of widths mlx-lm never makes
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_lorascope_batches_and_loss_train_with_mlx_lm_losses_step_by_step(
    tiny_mistral_dir: Path, tmp_path: Path,
) -> None:
    model_dir = tmp_path / "model"
    model_dir.symlink_to(tiny_mistral_dir)
    theirs, _ = mlx_lm_losses(model_dir, None, 6)
    ours, _ = mlx_lm_losses(model_dir, 8, 6, targets_only=True)
    assert ours == pytest.approx(theirs, rel=1e-5)
