"""Logits only at the counted targets: the loss and gradients of mlx-lm's default_loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.tuner.trainer import default_loss

from lorascope.config import LoraConfig, RunConfig
from lorascope.models.heads import bucket, counted_positions, split_head
from lorascope.models.loader import load_model, resolve_model
from lorascope.training.trainer import (
    attach_adapters,
    loss_tokens,
    resumable_batches,
    target_loss,
    tokenize_examples,
)


def test_buckets_hold_n_waste_at_most_an_eighth_and_are_few() -> None:
    sizes = {n: bucket(n) for n in range(1, 5000)}
    assert all(n <= b and b % 32 == 0 for n, b in sizes.items())
    assert all(b - n < max(32, n / 8) for n, b in sizes.items())
    assert len(set(sizes.values())) < 70


def test_counted_positions_are_the_flat_true_entries_then_padding_past_the_end() -> None:
    counted = np.zeros((3, 10), bool)
    counted[0, 4:9] = counted[2, 0:3] = True
    positions = counted_positions(counted)
    assert positions.tolist() == [4, 5, 6, 7, 8, 20, 21, 22] + [30] * 24


def chats(tokenizer: Any, sizes: tuple[int, ...]) -> list[tuple[list[int], int]]:
    return tokenize_examples(
        [[{"role": "user", "content": "why " * n}, {"role": "assistant", "content": "so " * 3 * n}]
         for n in sizes], tokenizer, mask_prompt=True)


def lora_model(path: Path) -> Any:
    model, tokenizer = load_model(path, RunConfig().model)
    mx.random.seed(0)
    attach_adapters(model, LoraConfig(rank=4, alpha=8, dropout=0.0))
    # non-zero B matrices, so that the adapters' gradients depend on the loss's every term
    model.update(nn.utils.tree_map(lambda p: p + 0.01, model.trainable_parameters()))
    return model, tokenizer


def assert_same_loss_and_gradients(model: Any, tokenizer: Any) -> None:
    data = chats(tokenizer, (1, 3, 7, 12))
    tokens, bounds, positions = next(resumable_batches(data, 4, 256, positions=True))
    full, full_grad = nn.value_and_grad(model, default_loss)(model, tokens, bounds)
    sparse, sparse_grad = nn.value_and_grad(model, target_loss)(model, tokens, bounds, positions)
    assert sparse[1].item() == full[1].item() == loss_tokens(tokens, bounds).item()
    assert sparse[0].item() == pytest.approx(full[0].item(), rel=1e-5)
    for (name, a), (_, b) in zip(tree_flatten(full_grad), tree_flatten(sparse_grad), strict=True):
        assert np.allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-6), name


def test_target_loss_equals_default_loss_and_its_gradients_on_untied_mistral(
    tiny_mistral_dir: Path,
) -> None:
    model, tokenizer = lora_model(tiny_mistral_dir)
    assert not model.args.tie_word_embeddings
    assert_same_loss_and_gradients(model, tokenizer)


def test_target_loss_equals_default_loss_and_its_gradients_on_tied_smollm2(
    session_home: Path,
) -> None:
    model, tokenizer = lora_model(resolve_model("smollm2-135m", home=session_home))
    assert model.args.tie_word_embeddings
    assert_same_loss_and_gradients(model, tokenizer)


def test_model_code_outside_the_known_compositions_keeps_its_full_logits() -> None:
    class Other(nn.Module):
        pass

    assert split_head(Other()) is None


def test_split_head_composes_to_the_model(tiny_mistral_dir: Path) -> None:
    model, _ = load_model(tiny_mistral_dir, RunConfig().model)
    body, head = split_head(model)
    tokens = mx.array([[1, 50, 60, 70, 80]])
    assert mx.allclose(head(body(tokens)), model(tokens), atol=1e-5).item()
