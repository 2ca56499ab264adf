"""Causal attention in query chunks, for training forward passes over long rows.

On CPU, MLX's `scaled_dot_product_attention` computes every query against every key and masks
the upper triangle afterwards: on a 1024-token row half of its scores, and of the scalar
exponentials behind its softmax, are thrown away, and on long rows attention is most of a
training step (one SmolLM2 block at 1024 tokens: attention forward and backward 0.45 s, the
MLP's forward 0.06 s). Split into chunks of `QUERY_CHUNK` queries, each chunk only needs the
keys up to its own last position: at 1024 tokens 5/8 of the scores, at 2048 9/16. Each
query's softmax still runs over exactly the keys the causal mask lets it see, so the output
is the same up to float rounding (tests/test_chunked_attention.py, forward and gradients).

mlx-lm's attention takes no argument that could ask for this. Its Llama/Mistral, Qwen2 and
Qwen3 attention calls the module-level `scaled_dot_product_attention` with the layer's
cache; training passes `WholeRows` in the cache's place (`batching.PackedRows` is one), and
`use_chunked_attention` swaps those modules' function for one that chunks when the cache is
a `WholeRows` (on the CPU: `chunks`) and otherwise hands the call, unchanged, to mlx-lm's
(generation, scoring, Apple GPUs).
Chunk boundaries depend only on the row's width, never on the data, so a compiled step
traces once per width as before.
"""

from __future__ import annotations

import importlib
from typing import Any

# Queries per chunk: measured on one SmolLM2 block at 1024 tokens, forward + backward, 256
# gave ~2x over one call; narrower chunks trade fewer scores for more, smaller calls.
QUERY_CHUNK = 256

# mlx-lm modules whose attention applies RoPE at `cache.offset`, takes its mask from
# `cache.make_mask` and calls the module's own `scaled_dot_product_attention` with the cache.
CHUNKABLE_MODULES = ("mlx_lm.models.llama", "mlx_lm.models.qwen2", "mlx_lm.models.qwen3")


class WholeRows:
    """Stands in for a layer's KV cache in a training forward pass: whole rows at once, from
    position 0, with causal attention (or the `mask` given, which must be causal too)."""

    offset = 0

    def __init__(self, mask: Any = "causal") -> None:
        self.mask = mask

    def update_and_fetch(self, keys: Any, values: Any) -> tuple[Any, Any]:
        return keys, values

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None) -> Any:
        import mlx.core as mx
        from mlx_lm.models.base import create_causal_mask

        windowed = window_size is not None and window_size < n
        if isinstance(self.mask, str):
            return create_causal_mask(n, window_size=window_size) if windowed else "causal"
        if not windowed:
            return self.mask
        steps = mx.arange(n)
        return self.mask & (steps[:, None] < steps[None] + window_size)


def keys_per_query(width: int, chunk: int = QUERY_CHUNK) -> float:
    """Keys each query is scored against, on average, in a row of `width` (the planner's
    attention cost): the whole row up to one chunk, then each chunk's keys up to its end."""
    if width <= chunk:
        return float(width)
    ends = range(chunk, width + chunk, chunk)
    return sum(min(end, width) * (min(end, width) - start)
               for start, end in zip(range(0, width, chunk), ends, strict=True)) / width


def causal_in_chunks(queries: Any, keys: Any, values: Any, scale: float, mask: Any,
                     chunk: int = QUERY_CHUNK) -> Any:
    """Causal attention of (batch, heads, width, dim) queries over keys of the same width,
    `chunk` queries at a time against the keys up to the chunk's end. `mask` is "causal" or
    a boolean array (..., width, width) that allows no key after its query."""
    import mlx.core as mx

    width = queries.shape[2]
    outputs = []
    for start in range(0, width, chunk):
        end = min(start + chunk, width)
        if isinstance(mask, str):
            seen = mx.arange(start, end)[:, None] >= mx.arange(end)[None]
        else:
            seen = mask[..., start:end, :end]
        outputs.append(mx.fast.scaled_dot_product_attention(
            queries[:, :, start:end], keys[:, :, :end], values[:, :, :end],
            scale=scale, mask=seen))
    return mx.concatenate(outputs, axis=2)


def chunks(queries: Any, cache: Any, mask: Any, sinks: Any) -> bool:
    """Whether an attention call is one `causal_in_chunks` computes faster: a training
    forward pass (`WholeRows`) on the CPU over rows wider than a chunk. On Apple GPUs MLX's
    fused kernel already skips the blocks above the diagonal (and chunking is unmeasured)."""
    import mlx.core as mx

    return (isinstance(cache, WholeRows) and sinks is None and mask is not None
            and queries.shape[2] > QUERY_CHUNK and mx.default_device() == mx.cpu)


def _dispatching(original: Any) -> Any:
    def scaled_dot_product_attention(queries: Any, keys: Any, values: Any, cache: Any,
                                     scale: float, mask: Any, sinks: Any = None) -> Any:
        if chunks(queries, cache, mask, sinks):
            return causal_in_chunks(queries, keys, values, scale, mask)
        return original(queries, keys, values, cache, scale=scale, mask=mask, sinks=sinks)

    scaled_dot_product_attention.chunks_whole_rows = True
    return scaled_dot_product_attention


def use_chunked_attention() -> None:
    """Route the attention of `CHUNKABLE_MODULES` through `causal_in_chunks` whenever the
    cache is a `WholeRows` (idempotent; other caches reach mlx-lm's function unchanged)."""
    for name in CHUNKABLE_MODULES:
        module = importlib.import_module(name)
        if not getattr(module.scaled_dot_product_attention, "chunks_whole_rows", False):
            module.scaled_dot_product_attention = _dispatching(module.scaled_dot_product_attention)


def chunkable(model: Any) -> bool:
    """Whether `model`'s attention goes through `use_chunked_attention`'s hook."""
    return type(model).__module__ in CHUNKABLE_MODULES
