"""Behaviour families beyond the goal (issue 17): each set's prompts and its rule checker.

A set is an `eval.prompts` entry; `BEHAVIOUR_SETS[name].load(limit, seed)` gives its prompts
(offline, deterministic) and `.check(prompt, output)` the verdicts of one output. One module
per family: epistemic (knowledge, false-premise), sycophancy, safety (harmful, over-refusal),
robustness (injection, system-conflict, long-input, multilingual); refusal.py is the refusal
checker they share. docs/behaviour.md describes every set."""

from __future__ import annotations

from lorascope.evaluation.behaviour import epistemic, robustness, safety, sycophancy
from lorascope.evaluation.behaviour.base import BehaviourSet, Verdict

BEHAVIOUR_SETS: dict[str, BehaviourSet] = {
    behaviour_set.name: behaviour_set
    for module in (epistemic, sycophancy, safety, robustness)
    for behaviour_set in module.SETS
}

__all__ = ["BEHAVIOUR_SETS", "BehaviourSet", "Verdict"]
