"""Causal attention in query chunks: the same outputs and gradients as one call, on long rows."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.tuner.trainer import default_loss

from lorascope.config import RunConfig
from lorascope.models import chunked_attention as attention
from lorascope.models.chunked_attention import WholeRows, causal_in_chunks, keys_per_query
from lorascope.models.loader import load_model
from lorascope.training.batching import packed_loss
from lorascope.training.trainer import resumable_batches, target_loss, training_loss
from tests.test_heads import chats, lora_model


def attention_inputs(width: int) -> tuple[mx.array, mx.array, mx.array]:
    mx.random.seed(3)
    return (mx.random.normal((2, 4, width, 16)), mx.random.normal((2, 2, width, 16)),
            mx.random.normal((2, 2, width, 16)))


def one_call(q: mx.array, k: mx.array, v: mx.array, mask) -> mx.array:
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.25, mask=mask)


@pytest.mark.parametrize("width", [300, 512])
def test_chunked_causal_attention_equals_one_call_forward_and_backward(width: int) -> None:
    q, k, v = attention_inputs(width)

    def grads(fn):
        return mx.grad(lambda q, k, v: (fn(q, k, v) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)

    whole = one_call(q, k, v, "causal")
    chunked = causal_in_chunks(q, k, v, 0.25, "causal", chunk=128)
    assert mx.allclose(whole, chunked, atol=1e-5).item()
    for a, b in zip(grads(lambda *x: one_call(*x, "causal")),
                    grads(lambda *x: causal_in_chunks(*x, 0.25, "causal", chunk=128)),
                    strict=True):
        assert mx.allclose(a, b, atol=1e-4).item()


def test_chunked_attention_keeps_a_block_diagonal_packed_mask() -> None:
    q, k, v = attention_inputs(300)
    segment = mx.array(np.repeat([0, 1, 2], [90, 160, 50]))
    steps = mx.arange(300)
    mask = (segment[:, None] == segment[None]) & (steps[:, None] >= steps[None])
    assert mx.allclose(one_call(q, k, v, mask), causal_in_chunks(q, k, v, 0.25, mask, 128),
                       atol=1e-5).item()


def test_keys_per_query_counts_the_scores_chunks_compute() -> None:
    assert keys_per_query(200, chunk=256) == 200
    assert keys_per_query(1024, chunk=256) == 640  # 5/8 of the full square
    assert keys_per_query(300, chunk=256) == (256 * 256 + 300 * 44) / 300


def long_rows(tokenizer) -> tuple[mx.array, mx.array, mx.array]:
    # rows up to ~600 tokens: three query chunks of 256
    return next(resumable_batches(chats(tokenizer, (20, 60, 150)), 3, 1024, positions=True))


@pytest.fixture
def counted_chunked_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = attention.causal_in_chunks

    def counting(*args, **kwargs):
        calls.append(args[0].shape[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(attention, "causal_in_chunks", counting)
    return calls


def test_training_loss_on_long_rows_chunks_attention_and_keeps_default_loss_and_gradients(
    tiny_mistral_dir: Path, counted_chunked_calls: list[int],
) -> None:
    model, tokenizer = lora_model(tiny_mistral_dir)
    tokens, bounds, positions = long_rows(tokenizer)
    assert tokens.shape[1] > 2 * attention.QUERY_CHUNK
    loss = training_loss(model, RunConfig().train)
    assert loss.func is target_loss
    full, full_grad = nn.value_and_grad(model, default_loss)(model, tokens, bounds)
    chunked, chunked_grad = nn.value_and_grad(model, loss)(model, tokens, bounds, positions)
    assert counted_chunked_calls == [tokens.shape[1] - 1] * len(model.layers)
    assert chunked[0].item() == pytest.approx(full[0].item(), rel=1e-5)
    for (name, a), (_, b) in zip(tree_flatten(full_grad), tree_flatten(chunked_grad),
                                 strict=True):
        assert np.allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-6), name


def test_packed_loss_on_long_rows_chunks_attention_and_sums_to_the_unpacked_loss(
    tiny_mistral_dir: Path, counted_chunked_calls: list[int],
) -> None:
    model, tokenizer = lora_model(tiny_mistral_dir)
    data = chats(tokenizer, (20, 60, 150))
    tokens, bounds, positions = long_rows(tokenizer)
    unpacked, unpacked_count = target_loss(model, tokens, bounds, positions)
    loss = training_loss(model, RunConfig(train={"pack": True}).train)
    assert loss is packed_loss
    counted_chunked_calls.clear()
    # one row per batch: the longest example alone, then the two others together
    rows = list(islice(resumable_batches(data, 1, 1024, loop=True, pack=True), 2))
    total = count = 0.0
    for tokens_p, segments, positions_p in rows:
        row_loss, row_count = packed_loss(model, tokens_p, segments, positions_p)
        total, count = total + row_loss.item() * row_count.item(), count + row_count.item()
    assert all(t.shape[1] > attention.QUERY_CHUNK for t, _, _ in rows)
    assert len(counted_chunked_calls) == 2 * len(model.layers)
    assert count == unpacked_count.item()
    assert total / count == pytest.approx(unpacked.item(), rel=1e-5)


def test_generation_caches_bypass_the_chunks(
    tiny_mistral_dir: Path, counted_chunked_calls: list[int],
) -> None:
    model, _ = load_model(tiny_mistral_dir, RunConfig().model)
    attention.use_chunked_attention()
    prompt = mx.array([list(range(5, 305))])
    cache = make_prompt_cache(model)
    model(prompt[:, :-1], cache=cache)
    step = model(prompt[:, -1:], cache=cache)[:, -1]
    assert mx.allclose(step, model(prompt)[:, -1], atol=1e-4).item()
    assert counted_chunked_calls == []


def test_whole_rows_answer_a_sliding_window_with_a_windowed_causal_mask() -> None:
    mask = WholeRows().make_mask(6, window_size=3)
    assert np.array(mask).astype(int).tolist()[5] == [0, 0, 0, 1, 1, 1]
    assert WholeRows().make_mask(6) == "causal"
