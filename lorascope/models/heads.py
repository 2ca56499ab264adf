"""Logits only where a loss reads them.

A language model's last step, the output projection to the vocabulary and the softmax over
it, runs at every position. A supervised loss reads a fraction of them: with prompt masking
only the answer's tokens, never the padding. On a small model with a large vocabulary that
waste dominates: on SmolLM2-135M (576 wide, 49 152 tokens) the projection and the
log-softmax over the vocabulary are ~40 % of a LoRA training step on CPU, where MLX's
exponentials are scalar. Splitting the model into its body (hidden states) and its head lets
a loss gather the positions it counts first and project only those: the same numbers,
summed in another order.

mlx-lm's models do not expose the split; for the model code whose `Model.__call__` is
exactly `head(self.model(inputs, cache))` (Llama/Mistral, Qwen2, Qwen3) we call the two
parts ourselves. Other model code gets None and keeps the full logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# mlx-lm modules whose Model.__call__ is `out = self.model(inputs, cache, input_embeddings)`
# followed by `embed_tokens.as_linear(out)` (tied) or `lm_head(out)`, nothing else.
SPLIT_HEAD_MODULES = frozenset({
    "mlx_lm.models.llama", "mlx_lm.models.qwen2", "mlx_lm.models.qwen3",
})

Body = Callable[..., Any]
Head = Callable[[Any], Any]


def split_head(model: Any) -> tuple[Body, Head] | None:
    """(body, head) with `model(x, cache) == head(body(x, cache))`, or None for model code
    not known to be that composition."""
    if type(model).__module__ not in SPLIT_HEAD_MODULES:
        return None
    if model.args.tie_word_embeddings:
        return model.model, model.model.embed_tokens.as_linear
    return model.model, model.lm_head


def logits_at(model: Any, inputs: Any, rows: Any, positions: Any, cache: Any = None) -> Any:
    """`model(inputs, cache)[rows, positions]`, with the head applied to those positions only
    where it splits off (scoring reads a few positions of each row)."""
    split = split_head(model)
    if split is None:
        return model(inputs, cache=cache)[rows, positions]
    body, head = split
    return head(body(inputs, cache)[rows, positions])


def bucket(n: int) -> int:
    """`n` rounded up so that few distinct sizes occur (mx.compile traces once per shape):
    a multiple of 32, and above 256 of an eighth of n's power of two (at most 1/8 waste)."""
    step = max(32, 1 << max(n.bit_length() - 4, 0))
    return max(step, -(-n // step) * step)


def counted_positions(counted: np.ndarray) -> np.ndarray:
    """Flat indices of the True entries of a (rows, positions) mask, padded to `bucket` size
    with `counted.size`, an index past the end that `gathered_cross_entropy` never counts."""
    flat = np.flatnonzero(counted)
    positions = np.full(bucket(len(flat)), counted.size, np.int32)
    positions[: len(flat)] = flat
    return positions


def gathered_cross_entropy(
    hidden: Any, head: Head, targets: Any, positions: Any
) -> tuple[Any, Any]:
    """Sum of the cross-entropies at `positions` (flat indices into hidden's rows × positions,
    from `counted_positions`) and their number; indices past the end are padding."""
    import mlx.core as mx
    import mlx.nn as nn

    flat = hidden.reshape(-1, hidden.shape[-1])
    counted = positions < flat.shape[0]
    index = mx.minimum(positions, flat.shape[0] - 1)
    ce = nn.losses.cross_entropy(head(flat[index]), targets.reshape(-1)[index]) * counted
    return ce.astype(mx.float32).sum(), counted.sum()
