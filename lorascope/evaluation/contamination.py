"""Training/evaluation contamination: which evaluation items share a word n-gram with the
run's training data, as GPT-3's and lm-eval's decontamination check it.

Text is normalized as lm-eval 0.4's `lm_eval/decontamination/janitor.py` (`Janitor`) does:
ASCII letters lowercased, ASCII punctuation (`string.punctuation`) deleted, words split on
whitespace; n-grams are runs of N = 13 words joined by single spaces (its `word_ngrams`).
We do not import janitor itself: importing it prints a warning and a traceback when its C++
helper is not compiled, and it has no index of a whole training set.

An item is contaminated when any of its n-grams occurs in a training record (GPT-3's "dirty").
N-grams never span two of an item's texts (a message and the reference are checked
separately). A text shorter than N words has no 13-gram; lm-eval then never flags it. Here a
text of at least MIN_WORDS (8, GPT-3's smallest N) but fewer than N words is checked whole:
flagged when the same word sequence occurs in a training record. Texts under MIN_WORDS words
are too short to tell a copy from a common phrase and are not checked (ngrams = 0).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lorascope import warehouse
from lorascope.data.records import Record
from lorascope.data.sources import load_splits
from lorascope.evaluation.capability import ChoiceItem, load_task
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.evaluation.steps import evaluation_key
from lorascope.runs import RunContext

NGRAM_SIZE = 13
MIN_WORDS = 8

# lm-eval's Janitor.translation_table: ASCII upper to lower case, punctuation deleted.
_NORMALIZE = str.maketrans(string.ascii_lowercase + string.ascii_uppercase,
                           string.ascii_lowercase * 2, string.punctuation)


@dataclass(frozen=True)
class EvalItem:
    eval_set: str         # the prompt set (eval.prompts entry) or capability task
    kind: str             # "prompt" or "capability"
    item_id: str          # prompt_id, or the capability item's id
    texts: list[str]      # checked separately


@dataclass(frozen=True)
class NgramIndex:
    """What an item is looked up in. Word tuples are stored by their hash() (64 bits; the
    index lives in one process), a fraction of the memory of the n-gram strings."""

    n: int
    min_words: int
    ngrams: frozenset[int]      # every n-gram of the training texts
    prefixes: frozenset[int]    # every min_words-gram: the first test for a short text
    text: str                   # every training text's normalized words, one text per line


def normalize(text: str) -> str:
    return text.translate(_NORMALIZE)


def ngrams(text: str, n: int = NGRAM_SIZE) -> list[str]:
    """The word n-grams of the normalized text, in order (none if it has fewer than n words)."""
    words = normalize(text).split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def item_ngrams(texts: Iterable[str], n: int = NGRAM_SIZE,
                min_words: int = MIN_WORDS) -> list[str]:
    """The distinct n-grams of an item's texts; a text of min_words..n-1 words is one whole."""
    found: dict[str, None] = {}
    for text in texts:
        words = normalize(text).split()
        if min_words <= len(words) < n:
            found[" ".join(words)] = None
        found.update(dict.fromkeys(ngrams(text, n)))
    return list(found)


def build_index(texts: Iterable[str], n: int = NGRAM_SIZE,
                min_words: int = MIN_WORDS) -> NgramIndex:
    """The n-grams and min_words-grams of every training text, and the texts themselves for
    whole short items."""
    normalized = [normalize(text).split() for text in texts]
    return NgramIndex(
        n, min_words, _tuple_hashes(normalized, n), _tuple_hashes(normalized, min_words),
        " " + " \n ".join(" ".join(words) for words in normalized) + " ",
    )


def _tuple_hashes(texts: list[list[str]], n: int) -> frozenset[int]:
    return frozenset(hash(tuple(words[i:i + n])) for words in texts
                     for i in range(len(words) - n + 1))


def record_texts(record: Record) -> list[str]:
    """A training record's text: the raw `text`, or every message's content."""
    if record.text is not None:
        return [record.text]
    return [str(message.get("content") or "") for message in record.messages]


def prompt_item(prompt: EvalPrompt) -> EvalItem:
    """An eval prompt's messages and its reference."""
    texts = [str(message.get("content") or "") for message in prompt.messages]
    return EvalItem(prompt.source, "prompt", prompt.prompt_id,
                    texts + ([prompt.reference] if prompt.reference else []))


def choice_item(task: str, item: ChoiceItem) -> EvalItem:
    """A capability question as it is scored: its context followed by the gold continuation
    (lm-eval's decontamination queries use the question only; the answer is added so that
    a training record holding question and answer is found too)."""
    return EvalItem(task, "capability", item.item_id, [item.context + item.choices[item.gold]])


def overlap_rows(index: NgramIndex, items: Sequence[EvalItem]) -> list[dict[str, Any]]:
    """Per item: how many of its n-grams it has, how many occur in the training data, whether
    it is contaminated (any does), and the first one that does."""
    rows = []
    for item in items:
        grams = item_ngrams(item.texts, index.n, index.min_words)
        found = [gram for gram in grams if _in_training(index, gram)]
        rows.append({
            "eval_set": item.eval_set, "kind": item.kind, "item_id": item.item_id,
            "ngram_size": index.n, "ngrams": len(grams), "overlapping": len(found),
            "contaminated": bool(found), "example_ngram": found[0] if found else None,
        })
    return rows


def _in_training(index: NgramIndex, gram: str) -> bool:
    words = tuple(gram.split())
    if len(words) >= index.n:
        return hash(words) in index.ngrams
    # a whole short text: its first min_words words somewhere, then the whole run in one text
    return hash(words[:index.min_words]) in index.prefixes and f" {gram} " in index.text


def contamination_run(
    context: RunContext, prompts: Sequence[EvalPrompt],
    capability_items_by_task: Mapping[str, Sequence[ChoiceItem]] | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Check the evaluation's prompts and capability items against the run's train split and
    replace the evaluation's rows in `contamination`; returns how many items were checked.

    `capability_items_by_task` defaults to eval.capability_tasks, eval.capability_limit items
    each. A run without a train split (adapters trained elsewhere) records nothing."""
    splits = load_splits(context.paths.data) if context.paths.data.is_dir() else {}
    if "train" not in splits:
        log(f"contamination: no train split in {context.paths.data}; nothing to check")
        return 0
    if capability_items_by_task is None:
        settings = context.config.eval
        capability_items_by_task = {task: load_task(task, settings.capability_limit)
                                    for task in settings.capability_tasks}
    index = build_index(text for record in splits["train"] for text in record_texts(record))
    items = [prompt_item(prompt) for prompt in prompts]
    items += [choice_item(task, item)
              for task, task_items in capability_items_by_task.items() for item in task_items]
    rows = [{**evaluation_key(context), **row} for row in overlap_rows(index, items)]
    warehouse.replace_rows(context.warehouse, "contamination", rows,
                           evaluation_id=context.evaluation_id)
    flagged = sum(row["contaminated"] for row in rows)
    log(f"contamination: {flagged} of {len(rows)} eval items share a {index.n}-gram with the "
        f"{len(splits['train'])} training records")
    return len(rows)
