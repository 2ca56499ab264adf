"""train.pack: several examples per row, each with the loss it has alone; exact resume."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from conftest import Interrupted, interrupt_at

from lorascope.config import parse_config
from lorascope.data.builtin import resolve_data_source
from lorascope.data.sources import load_splits
from lorascope.models.heads import counted_positions
from lorascope.models.loader import load_model
from lorascope.paths import RunPaths
from lorascope.training.batching import (
    PAD_SEGMENT,
    collate_packed,
    pack_rows,
    packable,
    packed_batches,
    packed_loss,
)
from lorascope.training.trainer import collate, resumable_batches, resume_conflicts, train_adapters


def examples(lengths: list[int], seed: int = 0) -> list[tuple[list[int], int]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(1, 500, n).tolist(), n // 3) for n in lengths]


def test_packed_rows_are_as_wide_as_the_longest_example() -> None:
    lengths = [20, 60, 33, 41, 12, 7, 50, 9]
    rows = [row for batch in packed_batches(lengths, 2, 256, 8) for row in batch]
    assert max(sum(n + 1 for n in (lengths[i] for i in row)) for row in rows) <= 65
    assert any(len(row) > 1 for row in rows)


def test_pack_rows_places_every_example_once_within_the_width() -> None:
    slots = [int(n) for n in np.random.default_rng(0).integers(5, 120, 300)]
    rows = pack_rows(slots, 128)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert max(sum(slots[i] for i in row) for row in rows) <= 128
    assert len(rows) <= 1.05 * sum(slots) / 128 + 1  # best-fit decreasing leaves little room


def test_collated_packed_rows_count_the_targets_default_loss_counts_unpacked() -> None:
    data = examples([10, 30, 7, 16])
    tokens, segments, positions = collate_packed([data[:3], data[3:]], 256, 8)
    counted = [int(collate([e], 256, 8)[1][0, 1]) - max(e[1], 1) + 1 for e in data]
    assert int((positions < 2 * 56).sum()) == sum(counted)
    assert tokens.shape == (2, 57)  # 11 + 31 + 8 = 50 positions, padded to 1 + 7 x 8
    assert int((segments >= 0).sum()) == 10 + 30 + 7 + 16  # real tokens; the rest PAD_SEGMENT
    assert segments[0, 10].item() == PAD_SEGMENT  # the padding target after the first example


@pytest.fixture(scope="module")
def tiny(tiny_mistral_dir: Path) -> Any:
    model, _ = load_model(tiny_mistral_dir)
    mx.eval(model.parameters())
    return model


def test_each_packed_example_has_its_unpacked_loss(tiny: Any) -> None:
    from mlx_lm.tuner.trainer import default_loss

    data = examples([23, 40, 17, 9, 61, 5], seed=1)
    tokens, segments, positions = collate_packed([data[:4], data[4:]], 256, 8)
    row_of = [0, 0, 0, 0, 1, 1]
    segment_of = [0, 1, 2, 3, 0, 1]
    counted = np.zeros((tokens.shape[0], tokens.shape[1] - 1), bool)
    counted.flat[[p for p in np.array(positions) if p < counted.size]] = True
    for k, example in enumerate(data):
        alone, _ = default_loss(tiny, *collate([example], 256, 8))
        rows = np.arange(tokens.shape[0])[:, None] == row_of[k]
        own = counted & rows & (np.array(segments[:, :-1]) == segment_of[k])
        packed, _ = packed_loss(tiny, tokens, segments, mx.array(counted_positions(own)))
        assert packed.item() == pytest.approx(alone.item(), rel=1e-5), k


def test_a_packed_batch_loss_is_the_token_weighted_mean_of_its_examples(tiny: Any) -> None:
    from mlx_lm.tuner.trainer import default_loss

    data = examples([23, 40, 17, 9, 61, 5], seed=2)
    loss, count = packed_loss(tiny, *collate_packed([data[:3], data[3:]], 256, 8))
    alone = [default_loss(tiny, *collate([e], 256, 8)) for e in data]
    assert count.item() == sum(n.item() for _, n in alone)
    mean = sum(v.item() * n.item() for v, n in alone) / count.item()
    assert loss.item() == pytest.approx(mean, rel=1e-5)


def test_tiny_mistral_can_be_packed(tiny: Any) -> None:
    assert packable(tiny) is None


def test_a_model_outside_mlx_lms_llama_code_cannot_be_packed() -> None:
    class Other:
        pass

    assert "Llama/Mistral" in packable(Other())


def test_packed_batches_started_mid_stream_continue_the_same_order() -> None:
    data = examples([int(n) for n in np.random.default_rng(3).integers(8, 90, 60)])
    whole = resumable_batches(data, 2, 128, loop=True, seed=5, pack=True, pad_to=8)
    later = resumable_batches(data, 2, 128, loop=True, seed=5, start=7, pack=True, pad_to=8)
    for a, b in zip(islice(whole, 7, 20), islice(later, 13), strict=True):
        assert all(x.tolist() == y.tolist() for x, y in zip(a, b, strict=True))


def test_an_epoch_of_packed_batches_trains_each_example_at_most_once() -> None:
    lengths = [int(n) for n in np.random.default_rng(4).integers(8, 90, 60)]
    batches = packed_batches(lengths, 2, 128, 8)
    seen = [i for batch in batches for row in batch for i in row]
    assert len(seen) == len(set(seen)) and len(seen) > 0.9 * len(lengths)


# ---------------------------------------------------------------- config and resume


PACKED = {
    "seed": 7,
    "model": {"source": "tiny-mistral"},
    "data": {"max_seq_length": 128},
    "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},
    "train": {"iters": 8, "batch_size": 2, "steps_per_report": 2, "save_every": 4,
              "steps_per_eval": 100, "val_batches": 1, "pack": True},
}


def test_pack_is_part_of_the_run_id_only_when_on() -> None:
    unpacked = {**PACKED, "train": {**PACKED["train"], "pack": False}}
    without = {**PACKED, "train": {k: v for k, v in PACKED["train"].items() if k != "pack"}}
    assert parse_config(unpacked).training_hash() == parse_config(without).training_hash()
    assert parse_config(PACKED).training_hash() != parse_config(unpacked).training_hash()


def test_a_checkpoint_from_before_pack_existed_resumes_unpacked_only() -> None:
    saved = {"train": {"iters": 10}}
    assert resume_conflicts(saved, {"train": {"iters": 10, "pack": False}}) == []
    assert resume_conflicts(saved, {"train": {"iters": 10, "pack": True}}) == ["train.pack"]


def test_pack_over_several_ranks_is_refused() -> None:
    with pytest.raises(ValueError, match="train.pack"):
        parse_config({**PACKED, "train": {**PACKED["train"], "ranks": 2}})


def train_packed(run_dir: Path, model_dir: Path, conversations: dict, **kwargs: Any) -> Any:
    model, tokenizer = load_model(model_dir)
    return train_adapters(model, tokenizer, conversations["train"], conversations["valid"],
                          parse_config(PACKED), model_dir, RunPaths(run_dir), "test", "data",
                          log=lambda _: None, **kwargs)


def test_packed_training_resumed_after_an_interruption_gives_identical_adapters(
    tmp_path: Path, session_home: Path, tiny_mistral_dir: Path
) -> None:
    splits = load_splits(resolve_data_source("builtin:sciq-format", session_home))
    conversations = {name: [r.messages for r in rows] for name, rows in splits.items()}
    rows: dict[str, list] = {"whole": [], "resumed": []}
    train_packed(tmp_path / "whole", tiny_mistral_dir, conversations, sink=rows["whole"].extend)
    with pytest.raises(Interrupted):
        train_packed(tmp_path / "cut", tiny_mistral_dir, conversations,
                     after_report=interrupt_at(4))
    result = train_packed(tmp_path / "cut", tiny_mistral_dir, conversations,
                          sink=rows["resumed"].extend)

    assert result.resumed_from_step == 4
    whole = mx.load(str(tmp_path / "whole" / "adapters" / "adapters.safetensors"))
    resumed = mx.load(str(tmp_path / "cut" / "adapters" / "adapters.safetensors"))
    assert all(mx.array_equal(whole[k], resumed[k]).item() for k in whole)
    losses = {r["step"]: r["loss"] for r in rows["whole"] if r["split"] == "train"}
    assert [(r["step"], r["loss"]) for r in rows["resumed"] if r["split"] == "train"] == [
        (step, losses[step]) for step in (6, 8)]
