"""Packed training batches (train.pack): several examples per row, each trained as if alone.

mlx-lm's batches hold one example per row, padded to the longest row of the batch. Packing
lays examples end to end (best-fit decreasing) in rows as wide as the longest example, the
width of the widest unpacked batch (so the same peak memory): a step computes almost no
padding, and nearly every step has that one shape, compiled once. Two things keep
each example independent, without forking mlx-lm's model code:

- **Attention**: a block-diagonal causal mask (a position sees only earlier positions of its
  own example). mlx-lm's Llama/Mistral models take no mask argument, but they ask each
  layer's cache for one (`cache.make_mask`), apply RoPE at `cache.offset` and pass keys
  through `cache.update_and_fetch`; `models.chunked_attention.WholeRows` stands in for the
  cache during training and answers with the packed mask, offset 0, and the keys unchanged
  (and on long rows, attention runs in query chunks there too).
- **Positions**: RoPE rotates by position, and mlx's rope takes one offset per row, not per
  token, so an example later in a row sees positions that do not start at 0. The attention
  score of RoPE depends only on the distance between query and key, so within an example
  (the only keys its mask lets it see) the scores are those of the example alone, up to
  float rounding: the per-example losses equal the unpacked ones (tests/test_packing.py).
  This holds for rotations whose frequencies do not depend on the row's length (`nn.RoPE`,
  Llama 3's); `packable` refuses the others (dynamic NTK, LongRoPE) and other model code.

Each example keeps the one target past its end that mlx-lm's default_loss counts (a padding
token), so its loss is the one mlx-lm computes for it unpacked. Logits are computed only at
those targets (`models.heads`). Validation batches are packed one example per row, so that
one loss function reads every batch. What packing does change is
what a step is: a step trains on every example its `batch_size` rows hold, several times
`batch_size` examples, so `train.iters` means fewer, larger steps per epoch; train.pack is
part of the run id.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

from lorascope.models.chunked_attention import WholeRows
from lorascope.models.heads import counted_positions, gathered_cross_entropy, split_head

PAD_SEGMENT = -1  # padding and each example's trailing padding target: computed, not real


def packable_code(module: str) -> str | None:
    """Why model code in mlx-lm module `module` cannot train on packed rows, or None if it
    can (`packable` checks a loaded model; `lorascope plan` a config's model_type)."""
    if module != "mlx_lm.models.llama":
        return (f"train.pack needs mlx-lm's Llama/Mistral model code (this model is "
                f"{module}), whose attention takes its mask and positions from the cache")
    return None


def packable(model: Any) -> str | None:
    """Why `model` cannot train on packed rows, or None if it can."""
    import mlx.nn as nn
    from mlx_lm.models.rope_utils import Llama3RoPE

    if (reason := packable_code(type(model).__module__)) is not None:
        return reason
    rope = model.layers[0].self_attn.rope
    if not isinstance(rope, nn.RoPE | Llama3RoPE):
        return (f"train.pack needs a RoPE whose rotation depends only on distance; this "
                f"model's is {type(rope).__name__}")
    return None


def slot_length(length: int, max_seq_length: int) -> int:
    """Positions an example takes in a packed row: its tokens and the padding target
    mlx-lm's default_loss counts after them (none when truncated, as unpacked)."""
    return min(length + 1, max_seq_length)


def pack_rows(slots: Sequence[int], width: int) -> list[list[int]]:
    """Example indices per row, best-fit decreasing: each example, longest first, goes to
    the fullest row it fits in. Deterministic (ties by index)."""
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row), sorted
    for i in sorted(range(len(slots)), key=lambda i: (-slots[i], i)):
        at = bisect.bisect_left(free, (slots[i], -1))
        if at == len(free):
            rows.append([i])
            room, row = width - slots[i], len(rows) - 1
        else:
            room, row = free.pop(at)
            rows[row].append(i)
            room -= slots[i]
        bisect.insort(free, (room, row))
    return rows


def packed_width(slots: Sequence[int], max_seq_length: int, pad_to: int) -> int:
    """1 + a multiple of `pad_to` that holds the longest example: the width of the widest
    unpacked batch, so that packing keeps its peak memory."""
    return min(1 + pad_to * ((max(slots) - 1 + pad_to - 1) // pad_to), max_seq_length)


def packed_batches(
    lengths: Sequence[int], batch_size: int, max_seq_length: int, pad_to: int
) -> list[list[list[int]]]:
    """Rows as wide as `packed_width`, `batch_size` rows a batch, fullest rows first; the
    last rows are dropped if they do not fill a batch, as mlx-lm drops the last examples."""
    slots = [slot_length(n, max_seq_length) for n in lengths]
    rows = pack_rows(slots, packed_width(slots, max_seq_length, pad_to))
    return [rows[i : i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]


def collate_packed(
    rows: Sequence[Sequence[tuple[list[int], int]]], max_seq_length: int, pad_to: int
) -> tuple[Any, Any, Any]:
    """(tokens, segments, positions) of packed rows, padded to 1 + a multiple of `pad_to`.

    `segments` numbers each position's example within its row (PAD_SEGMENT for padding and
    the padding target); `positions` are the targets that count (`heads.counted_positions`
    of a rows x (width - 1) mask: target t is token t + 1), as default_loss counts them
    unpacked: from the example's offset (at least its second token) to one past its end."""
    import mlx.core as mx

    fills = [sum(slot_length(len(ids), max_seq_length) for ids, _ in row) for row in rows]
    width = packed_width(fills, max_seq_length, pad_to)
    tokens = np.zeros((len(rows), width), np.int32)
    segments = np.full((len(rows), width), PAD_SEGMENT, np.int32)
    targets = np.zeros((len(rows), width - 1), bool)
    for r, row in enumerate(rows):
        start = 0
        for segment, (ids, offset) in enumerate(row):
            slot = slot_length(len(ids), max_seq_length)
            length = min(len(ids), slot)
            tokens[r, start : start + length] = ids[:length]
            segments[r, start : start + length] = segment
            targets[r, start + max(offset, 1) - 1 : start + slot - 1] = True
            start += slot
    return mx.array(tokens), mx.array(segments), mx.array(counted_positions(targets))


def packed_loss(model: Any, tokens: Any, segments: Any, positions: Any) -> tuple[Any, Any]:
    """mlx-lm's default_loss over packed rows: each counted target's cross-entropy, with
    attention kept within its example, summed / their number."""
    import mlx.core as mx

    inputs, seen = tokens[:, :-1], segments[:, :-1]
    steps = mx.arange(inputs.shape[1])
    mask = (seen[:, :, None] == seen[:, None, :]) & (steps[:, None] >= steps[None])
    caches = [WholeRows(mask[:, None])] * len(model.layers)
    body, head = split_head(model)
    total, count = gathered_cross_entropy(body(inputs, caches), head, tokens[:, 1:], positions)
    return total / count, count
