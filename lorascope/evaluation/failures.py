"""Failure modes of one generation, each with the span of output that shows it.

Every detector is a pure function of the prompt and the output (and mlx-lm's finish reason)
returning the evidence span, or None when the mode is absent. lm-eval has no failure-mode
taxonomy, so these are ours; format violations reuse its IFEval checkers' verdicts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lorascope.evaluation.prompts import EvalPrompt

EVIDENCE_CHARS = 120

# Special tokens of the chat templates lorascope meets (Mistral, ChatML/SmolLM2, Llama 3,
# Zephyr, Llama 2 system blocks): in decoded output they mean the template leaked.
TEMPLATE_TOKENS = (
    "[INST]", "[/INST]", "<s>", "</s>", "<<SYS>>", "<</SYS>>", "<|im_start|>", "<|im_end|>",
    "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|user|>",
    "<|assistant|>", "<|system|>",
)

# The model starts the next user turn itself: a turn marker at a line start, then text.
USER_TURN = re.compile(
    r"(?:^|\n)[ \t]*(?:\[INST\]|<\|im_start\|>[ \t]*user|<\|user\|>|<\|start_header_id\|>user"
    r"|(?:User|USER|Human|HUMAN)[ \t]*:|###[ \t]*(?:Instruction|Human|User)\b:?)[ \t\n]*\S",
)

REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry,? but I (?:can(?:not|'t)|won't)"
    r"|I can(?:not|'t) (?:help|assist|comply|provide|answer|do that|fulfil)"
    r"|I(?:'m| am) (?:not able|unable) to (?:help|assist|comply|provide|answer)"
    r"|I must decline|as an AI(?: language model)?)",
    re.I,
)

# A span of 4+ characters repeated 4+ times in a row ("the the the the", "abababab", "\n\n...").
LOOP = re.compile(r"(.{4,}?)\1{3,}", re.S)
MIN_WORDS_FOR_LANGUAGE = 5
LANGUAGE_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Failure:
    mode: str
    evidence: str
    instruction_id: str = ""  # for format_violation: the instruction that was broken


def excerpt(text: str, start: int = 0) -> str:
    return text[start : start + EVIDENCE_CHARS]


def empty(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    return "" if not output.strip() else None


def truncated(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    """mlx-lm stopped at max_tokens, not at an EOS token."""
    return output[-EVIDENCE_CHARS:] if finish_reason == "length" else None


def repetition(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    """A runaway loop: a span repeated back to back, or a 4-gram said 3+ times making up
    30 %+ of the words (twice is not enough: the house format restates the answer)."""
    if loop := LOOP.search(output):
        return excerpt(loop.group(0))
    words = output.split()
    grams = Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))
    if grams:
        gram, count = grams.most_common(1)[0]
        if count >= 3 and count * 4 >= 0.3 * len(words):
            return " ".join(gram)
    return None


def template_leak(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    hits = [(output.find(t), t) for t in TEMPLATE_TOKENS if t in output]
    if not hits:
        return None
    start, _ = min(hits)
    return excerpt(output, max(0, start - 20))


def user_turn_continuation(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    """The model writes a new user turn ("[INST] ...", "User: ...", "### Instruction") itself."""
    if turn := USER_TURN.search(output):
        return excerpt(output, turn.start()).strip()
    return None


def refusal(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    return found.group(0) if (found := REFUSAL.search(output)) else None


def prompt_echo(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    """The output starts by repeating the user turn (unless IFEval's repeat_prompt asked it)."""
    if any(i["id"] == "combination:repeat_prompt" for i in prompt.instructions):
        return None
    user = " ".join(prompt.user_text.split())
    if len(user) < 10:
        return None
    head = user[:40]
    said = " ".join(output.split())
    return said[: len(head)] if said.lower().startswith(head.lower()) else None


def detect_language(text: str) -> tuple[str, float] | None:
    """langdetect's best guess and its probability (seeded: IFEval's checkers use it too)."""
    import langdetect

    langdetect.DetectorFactory.seed = 0
    try:
        best = langdetect.detect_langs(text)[0]
    except langdetect.LangDetectException:
        return None
    return best.lang, best.prob


def expected_language(prompt: EvalPrompt) -> str | None:
    for instruction in prompt.instructions:
        if instruction["id"] == "language:response_language":
            return instruction["kwargs"]["language"]
    if len(prompt.user_text.split()) < MIN_WORDS_FOR_LANGUAGE:
        return None
    guess = detect_language(prompt.user_text)
    return guess[0] if guess and guess[1] >= LANGUAGE_CONFIDENCE else None


def language_drift(prompt: EvalPrompt, output: str, finish_reason: str) -> str | None:
    """The output is confidently in another language than asked for (or than the prompt's)."""
    if len(output.split()) < MIN_WORDS_FOR_LANGUAGE:
        return None
    expected = expected_language(prompt)
    guess = detect_language(output)
    if expected is None or guess is None:
        return None
    language, probability = guess
    if language != expected and probability >= LANGUAGE_CONFIDENCE:
        return f"{expected}->{language}: {excerpt(output)}"
    return None


DETECTORS: dict[str, Callable[[EvalPrompt, str, str], str | None]] = {
    "empty": empty,
    "truncated": truncated,
    "repetition": repetition,
    "template_leak": template_leak,
    "user_turn_continuation": user_turn_continuation,
    "refusal": refusal,
    "prompt_echo": prompt_echo,
    "language_drift": language_drift,
}


def find_failures(
    prompt: EvalPrompt, output: str, finish_reason: str, broken_instructions: Sequence[str] = (),
) -> list[Failure]:
    """Every failure mode of one generation; `broken_instructions` become format violations."""
    found = [
        Failure(mode, evidence)
        for mode, detect in DETECTORS.items()
        if (evidence := detect(prompt, output, finish_reason)) is not None
    ]
    found += [
        Failure("format_violation", excerpt(output), instruction_id)
        for instruction_id in dict.fromkeys(broken_instructions)
    ]
    return found
