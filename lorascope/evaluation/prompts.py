"""Evaluation prompts, from the prompt sets a config names (eval.prompts): the run's own
held-out test split (its answers the references), the built-in IFEval- and IFBench-style
prompts, a built-in dataset's eval prompts, or a JSONL file of `{id, domain, category,
messages, reference, aliases, instructions}` rows."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lorascope.data.records import Record

TEST_SPLIT = "test"
Item = TypeVar("Item")


@dataclass(frozen=True)
class EvalPrompt:
    prompt_id: str
    domain: str
    category: str
    messages: list[dict[str, str]]
    reference: str | None = None
    aliases: list[str] = field(default_factory=list)
    # Instructions to verify: [{"id": "punctuation:no_comma", "kwargs": {}}, ...], IFEval ids
    # as lm-eval spells them, IFBench ids prefixed "ifbench:" (lorascope.evaluation.ifbench)
    instructions: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # the prompt set (eval.prompts entry) it came from

    @property
    def user_text(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def eval_prompt(row: dict[str, Any], where: str) -> EvalPrompt:
    if row.get("instructions"):
        from lorascope.evaluation.ifbench import validate_instructions  # IFEval and IFBench ids

        validate_instructions(row["instructions"], where)
    try:
        return EvalPrompt(
            prompt_id=str(row["id"]), domain=row.get("domain", "in_domain"),
            category=row.get("category", ""), messages=row["messages"],
            reference=row.get("reference"), aliases=list(row.get("aliases") or []),
            instructions=list(row.get("instructions") or []),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{where}: not a valid eval prompt ({error!r})") from None


def read_eval_prompts(path: Path) -> list[EvalPrompt]:
    """The prompts of a JSONL file; errors name its line."""
    prompts = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error})") from None
                prompts.append(eval_prompt(row, f"{path}:{number}"))
    return prompts


def sample(items: Sequence[Item], limit: int | None, seed: int) -> list[Item]:
    """At most `limit` items drawn with `seed`, in their original order (all if fewer)."""
    if limit is None or len(items) <= limit:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def test_example_id(index: int) -> str:
    """The id of the test split's `index`-th (sampled) example, as prompt and as test loss."""
    return f"test-{index:05d}"


def test_split_prompts(records: Sequence[Record]) -> list[EvalPrompt]:
    """One prompt per test example that ends in an assistant answer: the conversation up to
    that answer, the answer as the reference. Ids follow the split's order."""
    prompts = []
    for index, record in enumerate(records):
        if len(record.messages) < 2 or record.messages[-1].get("role") != "assistant":
            continue  # raw text, or nothing to answer: scored by the test loss only
        *context, last = record.messages
        prompts.append(EvalPrompt(
            prompt_id=test_example_id(index), domain="in_domain", category=record.label or "test",
            messages=context, reference=str(last.get("content") or ""), source=TEST_SPLIT,
        ))
    return prompts
