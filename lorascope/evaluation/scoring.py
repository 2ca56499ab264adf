"""Per-generation scores: pure functions of (prompt, output) text.

- IFEval prompts (with `instructions`): lm-eval's strict and loose checks, per instruction and
  per prompt (lorascope.evaluation.ifeval); `ifbench:` instructions go to IFBench's own checkers
  (lorascope.evaluation.ifbench), with prompt-level metrics of their own.
- Prompts with a reference: exact match, token F1 (SQuAD's) and ROUGE-L F1 (rouge-score,
  lm-eval's scorer).
- The tuning goal the config declares (eval.goal: regex/format, JSON, JSON Schema, IFEval ids,
  reference thresholds) on the prompts without instructions of their own.

Answer matching normalizes the way SQuAD / TriviaQA evaluation does (lowercase, drop
punctuation and articles, collapse spaces), which is also lm-evaluation-harness's habit.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from lorascope.config import GoalCheck
from lorascope.evaluation import ifbench, ifeval
from lorascope.evaluation.failures import Failure, find_failures
from lorascope.evaluation.ifeval import InstructionResult
from lorascope.evaluation.prompts import EvalPrompt


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


def json_answer(output: str) -> Any:
    """The answer's JSON value (inside a ```json fence, if any); raises ValueError if none."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", output, re.S)
    return json.loads(fenced[1] if fenced else output)


def goal_check(check: GoalCheck, prompt: EvalPrompt, output: str,
               reference_metrics: dict[str, float]) -> bool:
    """Whether `output` passes one declared goal check (config eval.goal)."""
    references = [prompt.reference, *prompt.aliases] if prompt.reference else []
    if check.regex is not None:
        pattern = re.compile(check.regex, re.S)
        found = {"start": pattern.match, "search": pattern.search,
                 "full": pattern.fullmatch}[check.match](output)
        if found is None or check.reference_in_group is None:
            return found is not None
        return contains_answer(found[check.reference_in_group] or "", references)
    if check.contains_reference:
        return contains_answer(output, references)
    if check.valid_json or check.json_schema is not None:
        try:
            value = json_answer(output)
        except ValueError:
            return False
        if check.json_schema is None:
            return True
        import jsonschema

        return jsonschema.validators.validator_for(check.json_schema)(
            check.json_schema).is_valid(value)
    if check.instructions:
        results, _ = instruction_scores(
            replace(prompt, instructions=check.instructions), output)
        return all(result.strict for result in results)
    return reference_metrics.get(check.reference_metric, 0.0) >= check.min


@functools.cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def token_f1(output: str, reference: str) -> float:
    """SQuAD's token F1 between normalized answer and reference."""
    predicted, gold = normalize_answer(output).split(), normalize_answer(reference).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def reference_scores(output: str, references: Iterable[str]) -> dict[str, float]:
    """Best exact match, token F1 and ROUGE-L F1 over the references (lm-eval and SQuAD take
    the max too)."""
    references = [r for r in references if r]
    return {
        "exact_match": float(any(normalize_answer(output) == normalize_answer(r)
                                 for r in references)),
        "token_f1": max(token_f1(output, r) for r in references),
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


def score_generation(
    prompt: EvalPrompt, output: str, finish_reason: str, goal: Sequence[GoalCheck] = (),
) -> GenerationScore:
    """All scores, instruction results and failure modes of one generation: the prompt's own
    instructions, reference metrics, and the declared goal's checks (on prompts without
    instructions of their own; checks against the reference only where there is one). A
    failed instruction or format check is a format violation named after it."""
    scores = {"words": float(len(output.split()))}
    instructions: list[InstructionResult] = []
    broken: list[str] = []
    if prompt.reference:
        scores |= reference_scores(output, [prompt.reference, *prompt.aliases])
    if prompt.instructions:
        instructions, family_scores = instruction_scores(prompt, output)
        scores |= family_scores
        broken = [r.instruction_id for r in instructions if not r.strict]
    else:
        for check in goal:
            if check.prompt_sets is not None and prompt.source not in check.prompt_sets:
                continue  # another prompt set's goal: not scored on this one
            if check.needs_reference and not prompt.reference:
                continue  # nothing to compare with: not scored on this check
            passed = goal_check(check, prompt, output, scores)
            scores[check.name] = float(passed)
            if not passed and not check.needs_reference:
                broken.append(check.name)  # a wrong answer is a score, not a format failure
    failures = find_failures(prompt, output, finish_reason, broken)
    return GenerationScore(scores, instructions, failures)
