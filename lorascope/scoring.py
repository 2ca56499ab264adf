"""Per-generation scores and failure modes: pure functions of (prompt, output) text.

Answer matching normalizes the way SQuAD / TriviaQA evaluation does (lowercase, drop
punctuation and articles, collapse spaces), which is also lm-evaluation-harness's habit.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

from lorascope.generation import EvalPrompt

HOUSE_FORMAT = re.compile(r"^\s*Answer:\s*(?P<answer>[^\n]+)\n+\s*Explanation:\s*(?P<why>\S.*)", re.S)
TEMPLATE_TOKENS = ("[INST]", "[/INST]", "<|im_start|>", "<|im_end|>", "<s>", "</s>")
REFUSAL = re.compile(r"\b(I can(?:no|')t|I'm (?:not able|unable)|I am (?:not able|unable)|as an AI)\b", re.I)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(text: str, references: Iterable[str]) -> bool:
    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(ref)} " in haystack for ref in references if normalize_answer(ref))


def goal_scores(prompt: EvalPrompt, output: str) -> dict[str, float]:
    """The demo's tuning goal: the house answer format, and the right answer in it."""
    match = HOUSE_FORMAT.match(output)
    references = [prompt.reference, *prompt.aliases] if prompt.reference else []
    scores = {
        "format_ok": float(match is not None),
        "starts_with_answer": float(output.lstrip().startswith("Answer:")),
        "words": float(len(output.split())),
    }
    if references:
        scores["answer_in_output"] = float(contains_answer(output, references))
        scores["answer_correct"] = float(
            match is not None and contains_answer(match["answer"], references)
        )
    return scores


def repeated_ngram_fraction(text: str, n: int = 4) -> float:
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


def failure_modes(prompt: EvalPrompt, output: str, finish_reason: str) -> list[dict[str, Any]]:
    """Failure modes found in one generation, each with the evidence span."""
    found: list[tuple[str, str]] = []
    stripped = output.strip()
    if not stripped:
        found.append(("empty", ""))
    if finish_reason == "length":
        found.append(("truncated", output[-80:]))
    if repeated_ngram_fraction(output) > 0.3:
        found.append(("repetition", output[:120]))
    leaked = next((token for token in TEMPLATE_TOKENS if token in output), None)
    if leaked:
        found.append(("template_leak", leaked))
    if refusal := REFUSAL.search(output):
        found.append(("refusal", refusal.group(0)))
    user = prompt.user_text.strip()
    if user and stripped.startswith(user[:40]):
        found.append(("prompt_echo", stripped[:80]))
    return [{"mode": mode, "evidence": evidence} for mode, evidence in found]
