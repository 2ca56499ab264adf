"""Attention patterns of base and tuned models, and how far tuning moved them.

`mx.fast.scaled_dot_product_attention` returns no weights (ml-explore/mlx#2590), so while a
prompt runs through the model we route mlx-lm's attention call through an explicit
softmax(QKᵀ·scale + mask) that records the weights and returns the same output. The model
code itself is untouched: mlx-lm's Llama/Mistral modules call `scaled_dot_product_attention`
by its module-level name, which `recording_attention` swaps for the length of one forward pass.

Per layer and head we keep a few numbers that have a meaning (lower entropy = sharper focus;
BOS mass = the "attention sink"; previous-token mass = local, induction-like heads) and, for
base vs tuned on the same tokens, the Jensen-Shannon divergence of their attention rows.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

EPS = 1e-12


def explicit_attention(queries: Any, keys: Any, values: Any, scale: float, mask: Any) -> tuple:
    """(output, weights) of scaled dot-product attention, grouped-query heads expanded."""
    import mlx.core as mx

    n_heads, n_kv_heads = queries.shape[1], keys.shape[1]
    if n_heads != n_kv_heads:
        keys = mx.repeat(keys, n_heads // n_kv_heads, axis=1)
        values = mx.repeat(values, n_heads // n_kv_heads, axis=1)
    scores = (queries * scale) @ keys.transpose(0, 1, 3, 2)
    q_len, k_len = scores.shape[-2:]
    if isinstance(mask, str):  # "causal": query i sees keys up to i (+ any cached prefix)
        allowed = mx.arange(q_len)[:, None] + (k_len - q_len) >= mx.arange(k_len)[None]
        scores = mx.where(allowed, scores, -mx.inf)
    elif mask is not None:
        scores = mx.where(mask, scores, -mx.inf) if mask.dtype == mx.bool_ else scores + mask
    weights = mx.softmax(scores.astype(mx.float32), axis=-1)
    return (weights.astype(values.dtype) @ values), weights


@contextmanager
def recording_attention(model: Any) -> Iterator[list[np.ndarray]]:
    """Within the block, each forward pass of `model` appends one (batch, heads, q, k)
    weight array per attention layer, in layer order, to the yielded list."""
    module = sys.modules[type(model).__module__]
    original = getattr(module, "scaled_dot_product_attention", None)
    if original is None:
        raise NotImplementedError(
            f"attention analysis supports mlx-lm models that call scaled_dot_product_attention "
            f"(Llama, Mistral, ...); {module.__name__} does not"
        )
    recorded: list[np.ndarray] = []

    def record(queries, keys, values, cache, scale, mask, sinks=None):  # noqa: ANN001
        output, weights = explicit_attention(queries, keys, values, scale, mask)
        recorded.append(np.array(weights))
        return output

    module.scaled_dot_product_attention = record
    try:
        yield recorded
    finally:
        module.scaled_dot_product_attention = original


def attention_maps(model: Any, token_ids: Sequence[int]) -> list[np.ndarray]:
    """Per layer, the (heads, tokens, tokens) attention weights of one token sequence."""
    import mlx.core as mx

    with recording_attention(model) as recorded:
        mx.eval(model(mx.array([list(token_ids)])))
    return [layer[0] for layer in recorded]


def head_statistics(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per head of one layer's (heads, q, k) causal weights, averaged over query positions
    1.. (position 0 can only attend to itself): entropy in nats, the mass on token 0 (BOS,
    the usual attention sink) and on the previous token."""
    rows = weights[:, 1:, :].astype(np.float64)  # row j is query position j + 1
    previous = np.arange(rows.shape[1])  # ... whose previous token is position j
    entropy = -(rows * np.log(rows + EPS)).sum(-1)
    return {
        "entropy": entropy.mean(-1),
        "bos_mass": rows[:, :, 0].mean(-1),
        "previous_token_mass": rows[:, previous, previous].mean(-1),
    }


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats, 0..ln 2) between distributions on the last axis."""
    p, q = p.astype(np.float64), q.astype(np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * (np.log(a + EPS) - np.log(b + EPS))).sum(-1)

    return np.clip((kl(p, m) + kl(q, m)) / 2, 0.0, None)


def layer_head_rows(base: list[np.ndarray], tuned: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per (layer, head): base and tuned statistics and their JS divergence."""
    if len(base) != len(tuned):
        raise ValueError(f"base has {len(base)} attention layers, tuned {len(tuned)}")
    rows = []
    for layer, (b, t) in enumerate(zip(base, tuned, strict=True)):
        stats_b, stats_t = head_statistics(b), head_statistics(t)
        divergence = js_divergence(b[:, 1:], t[:, 1:]).mean(-1)
        for head in range(b.shape[0]):
            rows.append({
                "layer": layer, "head": head,
                "js_divergence": float(divergence[head]),
                **{f"base_{k}": float(v[head]) for k, v in stats_b.items()},
                **{f"tuned_{k}": float(v[head]) for k, v in stats_t.items()},
            })
    return rows
