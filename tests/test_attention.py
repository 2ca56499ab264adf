"""Attention weights recomputed on tiny-mistral: faithful to MLX's fused kernel, and the
statistics and divergences built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lorascope.analysis.attention import (
    attention_maps,
    explicit_attention,
    head_statistics,
    js_divergence,
    layer_head_rows,
)

TOKENS = [1, 415, 5565, 302, 4843, 349, 5465, 28723, 661, 349, 264, 2475]


@pytest.fixture(scope="module")
def model(tiny_mistral_dir: Path):
    from mlx_lm import load

    model, _ = load(str(tiny_mistral_dir))
    return model


def test_explicit_attention_matches_the_fused_kernel_with_grouped_query_heads() -> None:
    import mlx.core as mx

    mx.random.seed(0)
    queries = mx.random.normal((1, 4, 7, 16))
    keys, values = mx.random.normal((1, 2, 7, 16)), mx.random.normal((1, 2, 7, 16))
    fused = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=0.25, mask="causal")
    output, weights = explicit_attention(queries, keys, values, 0.25, "causal")
    np.testing.assert_allclose(np.array(output), np.array(fused), atol=1e-5)
    assert np.array(weights).shape == (1, 4, 7, 7)


def test_recorded_maps_leave_the_model_output_unchanged(model) -> None:
    import mlx.core as mx

    plain = np.array(model(mx.array([TOKENS])))
    maps = attention_maps(model, TOKENS)
    again = np.array(model(mx.array([TOKENS])))
    np.testing.assert_allclose(plain, again)  # the fused kernel is back in place
    assert len(maps) == len(model.layers)


def test_maps_are_causal_distributions_per_query(model) -> None:
    (first, *_) = attention_maps(model, TOKENS)
    heads, length, _ = first.shape
    assert (heads, length) == (4, len(TOKENS))
    np.testing.assert_allclose(first.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(first, k=1) == 0)  # no query looks at a later token


def test_head_statistics_of_known_patterns() -> None:
    length = 5
    uniform = np.tril(np.ones((length, length)))
    uniform /= uniform.sum(-1, keepdims=True)
    previous = np.zeros((length, length))
    previous[0, 0] = 1
    previous[np.arange(1, length), np.arange(length - 1)] = 1
    stats = head_statistics(np.stack([uniform, previous]))
    expected_entropy = np.mean([np.log(n) for n in range(2, length + 1)])
    np.testing.assert_allclose(stats["entropy"], [expected_entropy, 0.0], atol=1e-9)
    np.testing.assert_allclose(stats["previous_token_mass"], [np.mean(1 / np.arange(2, 6)), 1.0])
    np.testing.assert_allclose(stats["bos_mass"][1], 0.25)  # only query 1's previous is BOS


def test_js_divergence_is_zero_for_equal_and_ln2_for_disjoint_distributions() -> None:
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(js_divergence(p, q), [0.0, np.log(2)], atol=1e-9)


def test_an_adapter_on_queries_moves_attention_only_where_it_is_attached(
    tiny_mistral_dir: Path,
) -> None:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(tiny_mistral_dir))  # its own copy: this test attaches an adapter

    base = attention_maps(model, TOKENS)
    linear_to_lora_layers(model, 1, {"rank": 4, "scale": 20.0, "dropout": 0.0,
                                     "keys": ["self_attn.q_proj"]})
    last = model.layers[-1].self_attn.q_proj
    last.lora_b = mx.random.normal(last.lora_b.shape, key=mx.random.key(1))
    tuned = attention_maps(model, TOKENS)
    rows = layer_head_rows(base, tuned)
    per_layer = {layer: max(r["js_divergence"] for r in rows if r["layer"] == layer)
                 for layer in range(len(base))}
    assert per_layer[0] == pytest.approx(0.0, abs=1e-9)
    assert per_layer[len(base) - 1] > 1e-4
