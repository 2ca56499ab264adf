"""The test loss `mlx_lm lora --test` prints, kept per example, and the reference answers' NLL.

mlx-lm's `evaluate` sums `default_loss` over batches of the test split: the cross-entropy of
each target step s (token s given tokens 0..s-1) with offset <= s <= length, where offset is
where the answer starts under `mask_prompt` (0 without) and length the row's token count cut
at max_seq_length. A row shorter than max_seq_length therefore counts one target past its end
(the padding token); a cut row does not, its batch ending at max_seq_length. The test loss is
the summed loss over the summed token count, so per-example sums over the same steps pool back
to it exactly. mlx-lm returns only a batch's total, so the steps are rebuilt here per row;
tests/test_test_loss.py checks them against `default_loss` and `mlx_lm lora --test` itself.
(mlx-lm's CLI also leaves out the last len(test) % batch_size rows; lorascope scores them all.)

Beside it, each row's answer NLL: the reference answer's tokens (after the prompt whatever
`mask_prompt` says; from the second token of a raw-text row), whole, nothing past its end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from lorascope.data.records import Record
from lorascope.models.heads import logits_at
from lorascope.training.trainer import tokenize_examples


class LossExample(NamedTuple):
    ids: list[int]
    loss_offset: int  # where mlx-lm's loss starts: the answer under mask_prompt, else 0
    answer_offset: int  # where the reference answer starts


def loss_examples(rows: Sequence[Record], tokenizer: Any, mask_prompt: bool) -> list[LossExample]:
    """Token ids and both offsets of each row, tokenized as training tokenizes it."""
    return [LossExample(ids, offset if mask_prompt else 0, offset)
            for ids, offset in tokenize_examples(rows, tokenizer, mask_prompt=True)]


def loss_steps(example: LossExample, max_seq_length: int) -> range:
    """The target steps `default_loss` counts for the row in a batch of mlx-lm's
    `iterate_batches`: offset <= s <= min(length, max_seq_length - 1)."""
    last = min(len(example.ids), max_seq_length - 1)
    return range(max(example.loss_offset, 1), last + 1)


def answer_steps(example: LossExample) -> range:
    return range(max(example.answer_offset, 1), len(example.ids))


def score_batch(model: Any, examples: Sequence[LossExample], max_seq_length: int,
                ) -> list[dict[str, Any]]:
    """tokens/nll (mlx-lm's test loss terms) and answer_tokens/answer_nll of each example."""
    import mlx.core as mx

    spans = [(loss_steps(e, max_seq_length), answer_steps(e)) for e in examples]
    # One forward pass over the whole rows (causal, so a cut row's first max_seq_length
    # logits are those of the cut row), padded with 0 as mlx-lm pads, one column past the
    # longest row for the target past its end.
    tokens = np.zeros((len(examples), max(len(e.ids) for e in examples) + 1), np.int32)
    for row, example in enumerate(examples):
        tokens[row, : len(example.ids)] = example.ids
    # Only the scored steps are normalized: a log-softmax over the vocabulary at every
    # position would cost about as much as the forward pass on a CPU.
    steps = [np.arange(min(a.start, b.start), max(a.stop, b.stop)) for a, b in spans]
    rows = np.concatenate([np.full(len(s), r) for r, s in enumerate(steps)]).astype(np.int64)
    positions = np.concatenate(steps).astype(np.int64)
    nll = np.zeros(0)
    if len(positions):
        logits = logits_at(model, mx.array(tokens[:, :-1]), mx.array(rows),
                           mx.array(positions - 1))
        logits = logits.astype(mx.float32)
        targets = mx.array(tokens[rows, positions])
        picked = mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
        nll = np.array(mx.logsumexp(logits, axis=-1) - picked, dtype=np.float64)
    results, cursor = [], 0
    for row_steps, (loss, answer) in zip(steps, spans, strict=True):
        row_nll = nll[cursor : cursor + len(row_steps)]
        cursor += len(row_steps)
        results.append({"tokens": len(loss), "nll": span_sum(row_nll, row_steps, loss),
                        "answer_tokens": len(answer),
                        "answer_nll": span_sum(row_nll, row_steps, answer)})
    return results


def span_sum(nll: np.ndarray, steps: np.ndarray, span: range) -> float:
    """The sum of the NLLs at `steps` that fall in `span`."""
    return float(nll[(steps >= span.start) & (steps < span.stop)].sum())


def example_losses(
    model: Any, examples: Sequence[LossExample], max_seq_length: int, batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per example, in order, scored in batches of similar length (less padding;
    a row's terms do not depend on its batch)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    results: list[dict[str, Any]] = [{}] * len(examples)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for index, row in zip(
            batch, score_batch(model, [examples[i] for i in batch], max_seq_length), strict=True
        ):
            results[index] = row
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return results


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """The pooled numbers of scored rows, as `mlx_lm lora --test` prints its own."""
    tokens, answer_tokens = (sum(r[key] for r in rows) for key in ("tokens", "answer_tokens"))
    loss = sum(r["nll"] for r in rows) / max(tokens, 1)
    answer_loss = sum(r["answer_nll"] for r in rows) / max(answer_tokens, 1)
    return (f"Test loss {loss:.3f}, Test ppl {math.exp(loss):.3f} over {len(rows)} examples "
            f"({tokens} tokens); reference answers {answer_loss:.3f} per token "
            f"({answer_tokens} tokens)")
