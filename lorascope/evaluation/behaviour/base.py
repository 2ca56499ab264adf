"""What every behaviour family shares: a checker's verdict, a prompt set's description, and
the small text helpers the rule checkers build on (normalisation, phrase search)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lorascope.evaluation.prompts import EvalPrompt

EVIDENCE_CHARS = 80


@dataclass(frozen=True)
class Verdict:
    metric: str  # e.g. "refused", "correct", "abstained", "confident_wrong", "hedged"
    value: float  # 0.0/1.0 for rates
    verdict: str  # the checker's label, e.g. "refused" / "complied" / "partial"
    evidence: str  # the matched phrase or the reason, short; "" when nothing matched
    higher_is_better: bool | None  # the gate's direction; None when neutral


@dataclass(frozen=True)
class BehaviourSet:
    name: str  # the eval.prompts entry
    family: str  # "epistemic" | "sycophancy" | "safety" | "robustness"
    description: str  # one line, for docs and report
    source: str  # where the prompts come from, with licence
    harmful: bool  # prompts must never be printed to the console
    load: Callable[[int | None, int], list[EvalPrompt]]  # (limit, seed) -> prompts
    check: Callable[[EvalPrompt, str], list[Verdict]]  # (prompt, first-turn output)
    followup: str | None = None  # sycophancy: the push-back user turn
    check_followup: Callable[[EvalPrompt, str, str], list[Verdict]] | None = None


def verdict(metric: str, hit: bool, label: str, evidence: str,
            higher_is_better: bool | None) -> Verdict:
    return Verdict(metric, 1.0 if hit else 0.0, label, short(evidence), higher_is_better)


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


def phrases(*patterns: str) -> re.Pattern[str]:
    """One case-insensitive alternation; typographic apostrophes count as straight ones."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def plain(text: str) -> str:
    """Lower case, straight apostrophes, no accents: what phrase patterns are matched on."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = str.maketrans(string.punctuation, " " * len(string.punctuation))


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation (lower case, no punctuation, articles or extra spaces),
    accents folded too."""
    return " ".join(ARTICLES.sub(" ", plain(text).translate(PUNCTUATION)).split())


def find_answer(output: str, answers: Iterable[str]) -> str:
    """The first of `answers` that occurs in `output` as whole words after normalisation."""
    text = f" {normalize_answer(output)} "
    for answer in answers:
        wanted = normalize_answer(answer)
        if wanted and f" {wanted} " in text:
            return answer
    return ""
