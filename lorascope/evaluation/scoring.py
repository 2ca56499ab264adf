"""Per-generation scores: pure functions of (prompt, output) text.

- IFEval prompts (with `instructions`): lm-eval's strict and loose checks, per instruction and
  per prompt (lorascope.evaluation.ifeval); `ifbench:` instructions go to IFBench's own checkers
  (lorascope.evaluation.ifbench), with prompt-level metrics of their own.
- Prompts with a reference: exact match and ROUGE-L F1 (rouge-score, lm-eval's scorer).
- The demo's tuning goal on the other prompts: the house "Answer:/Explanation:" format and the
  right answer in it.

Answer matching normalizes the way SQuAD / TriviaQA evaluation does (lowercase, drop
punctuation and articles, collapse spaces), which is also lm-evaluation-harness's habit.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from lorascope.evaluation import ifbench, ifeval
from lorascope.evaluation.failures import Failure, find_failures
from lorascope.evaluation.ifeval import InstructionResult
from lorascope.evaluation.prompts import EvalPrompt

HOUSE_FORMAT = re.compile(
    r"^\s*Answer:\s*(?P<answer>[^\n]+)\n+\s*Explanation:\s*(?P<why>\S.*)", re.S
)
HOUSE_FORMAT_ID = "house_format"  # the demo's format, reported beside IFEval's instruction ids


@dataclass(frozen=True)
class GenerationScore:
    scores: dict[str, float]
    instructions: list[InstructionResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(text: str, references: Iterable[str]) -> bool:
    haystack = f" {normalize_answer(text)} "
    return any(
        f" {normalize_answer(ref)} " in haystack for ref in references if normalize_answer(ref)
    )


def goal_scores(prompt: EvalPrompt, output: str) -> dict[str, float]:
    """The demo's tuning goal: the house answer format, and the right answer in it."""
    match = HOUSE_FORMAT.match(output)
    references = [prompt.reference, *prompt.aliases] if prompt.reference else []
    scores = {
        "format_ok": float(match is not None),
        "starts_with_answer": float(output.lstrip().startswith("Answer:")),
    }
    if references:
        scores["answer_in_output"] = float(contains_answer(output, references))
        scores["answer_correct"] = float(
            match is not None and contains_answer(match["answer"], references)
        )
    return scores


@functools.cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def reference_scores(output: str, references: Iterable[str]) -> dict[str, float]:
    """Best exact match and ROUGE-L F1 over the references (lm-eval takes the max too)."""
    references = [r for r in references if r]
    return {
        "exact_match": float(any(normalize_answer(output) == normalize_answer(r)
                                 for r in references)),
        "rouge_l": max(_rouge().score(r, output)["rougeL"].fmeasure for r in references),
    }


def instruction_scores(
    prompt: EvalPrompt, output: str
) -> tuple[list[InstructionResult], dict[str, float]]:
    """Each instruction checked by its family (IFEval or IFBench), in the prompt's order, and
    each family's prompt-level metrics over its own instructions."""
    indexes: dict[ModuleType, list[int]] = {ifeval: [], ifbench: []}
    for index, instruction in enumerate(prompt.instructions):
        indexes[ifbench if instruction["id"].startswith(ifbench.PREFIX) else ifeval].append(index)
    results: dict[int, InstructionResult] = {}
    scores: dict[str, float] = {}
    for family, picked in indexes.items():
        if picked:
            checked = family.check_instructions(
                prompt.user_text, [prompt.instructions[i] for i in picked], output
            )
            scores |= family.prompt_scores(checked)
            results |= dict(zip(picked, checked, strict=True))
    return [results[i] for i in range(len(prompt.instructions))], scores


def score_generation(prompt: EvalPrompt, output: str, finish_reason: str) -> GenerationScore:
    """All scores, instruction results and failure modes of one generation."""
    scores = {"words": float(len(output.split()))}
    instructions: list[InstructionResult] = []
    broken: list[str] = []
    if prompt.instructions:
        instructions, family_scores = instruction_scores(prompt, output)
        scores |= family_scores
        broken = [r.instruction_id for r in instructions if not r.strict]
    else:
        goal = goal_scores(prompt, output)
        scores |= goal
        if not goal["format_ok"]:
            broken = [HOUSE_FORMAT_ID]
    if prompt.reference:
        scores |= reference_scores(output, [prompt.reference, *prompt.aliases])
    failures = find_failures(prompt, output, finish_reason, broken)
    return GenerationScore(scores, instructions, failures)
