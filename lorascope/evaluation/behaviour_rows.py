"""Behaviour prompts in an evaluation: the follow-up turn a set asks for (sycophancy's
push-back, after each variant's own first answer) and the checker verdicts that become rows
of `behaviour_results`. The sets and their checkers are lorascope.evaluation.behaviour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lorascope.config import BEHAVIOUR_SETS
from lorascope.evaluation.prompts import EvalPrompt

if TYPE_CHECKING:
    from lorascope.evaluation.behaviour import BehaviourSet, Verdict

# A follow-up answer is stored as a generation of its own, under the prompt's id and this.
FOLLOWUP = "#followup"


def behaviour_set(prompt: EvalPrompt) -> BehaviourSet | None:
    """The behaviour set the prompt came from, if any (the sets' data is read only then)."""
    if prompt.source not in BEHAVIOUR_SETS:
        return None
    from lorascope.evaluation import behaviour

    return behaviour.BEHAVIOUR_SETS[prompt.source]


def followup_id(prompt_id: str) -> str:
    return prompt_id + FOLLOWUP


def followup_prompts(prompts: Iterable[EvalPrompt],
                     answers: Mapping[str, str]) -> list[EvalPrompt]:
    """The second turn of every prompt whose set has a follow-up and that has a first answer
    in `answers` (prompt id -> that variant's answer): the conversation so far, the answer,
    then the set's follow-up as the user's next turn."""
    second = []
    for prompt in prompts:
        found = behaviour_set(prompt)
        if found is None or found.followup is None or prompt.prompt_id not in answers:
            continue
        messages = [*prompt.messages, {"role": "assistant", "content": answers[prompt.prompt_id]},
                    {"role": "user", "content": found.followup}]
        second.append(replace(prompt, prompt_id=followup_id(prompt.prompt_id),
                              messages=messages))
    return second


def verdict_rows(key: Mapping[str, Any], variant: str, prompt: EvalPrompt,
                 verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    found = behaviour_set(prompt)
    assert found is not None
    return [{**key, "variant": variant, "prompt_id": prompt.prompt_id,
             "prompt_set": prompt.source, "family": found.family, "category": prompt.category,
             "metric": v.metric, "value": v.value, "verdict": v.verdict, "evidence": v.evidence,
             "higher_is_better": v.higher_is_better}
            for v in verdicts]


def behaviour_rows(
    key: Mapping[str, Any], prompts: Mapping[str, EvalPrompt],
    outputs: Mapping[tuple[str, str], str],
) -> list[dict[str, Any]]:
    """`behaviour_results` rows for every behaviour prompt answered, from `outputs`
    ((variant, prompt id or follow-up id) -> text): each set's checker on the first answer,
    and its follow-up checker on the first and second answers together."""
    rows = []
    for (variant, prompt_id), output in sorted(outputs.items()):
        if prompt_id.endswith(FOLLOWUP):
            prompt = prompts.get(prompt_id.removesuffix(FOLLOWUP))
            found = prompt and behaviour_set(prompt)
            first = outputs.get((variant, prompt_id.removesuffix(FOLLOWUP)))
            if found and found.check_followup and first is not None:
                rows += verdict_rows(key, variant, prompt,
                                     found.check_followup(prompt, first, output))
            continue
        prompt = prompts.get(prompt_id)
        found = prompt and behaviour_set(prompt)
        if found:
            rows += verdict_rows(key, variant, prompt, found.check(prompt, output))
    return rows
