"""Evaluation prompts: a JSONL file of `{id, domain, category, messages, reference, aliases,
instructions}` rows, plus the built-in IFEval- and IFBench-style prompts when asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def load_eval_prompts(
    path: Path, include_ifeval: bool = False, include_ifbench: bool = False
) -> list[EvalPrompt]:
    """The prompts of a JSONL file, plus the built-in IFEval- / IFBench-style ones if asked."""
    prompts = read_eval_prompts(path)
    if include_ifeval:
        from lorascope.evaluation.ifeval import BUILTIN_PROMPTS as IFEVAL_PROMPTS
        from lorascope.evaluation.ifeval import builtin_prompt_rows

        prompts += [eval_prompt(row, str(IFEVAL_PROMPTS)) for row in builtin_prompt_rows()]
    if include_ifbench:
        from lorascope.evaluation.ifbench import BUILTIN_PROMPTS as IFBENCH_PROMPTS

        prompts += read_eval_prompts(IFBENCH_PROMPTS)
    ids = [p.prompt_id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{path}: prompt id {duplicate!r} is used twice")
    return prompts
