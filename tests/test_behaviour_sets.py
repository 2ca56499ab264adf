"""The behaviour prompt sets (issue 17): each loads offline, deterministically, with unique
ids named after the set, and at most `limit` prompts; harmful prompts are flagged and never
printed."""

from __future__ import annotations

import re

import pytest

from lorascope import config
from lorascope.evaluation.behaviour import (
    BEHAVIOUR_SETS,
    Verdict,
    robustness,
    safety,
)
from lorascope.evaluation.behaviour.epistemic import elements, false_premise_prompts
from lorascope.evaluation.behaviour.robustness import language_of, long_input_prompts

NAMES = {"knowledge": "epistemic", "false-premise": "epistemic", "sycophancy": "sycophancy",
         "harmful": "safety", "over-refusal": "safety", "injection": "robustness",
         "system-conflict": "robustness", "long-input": "robustness",
         "multilingual": "robustness"}


def test_the_registry_holds_the_nine_sets_in_their_families() -> None:
    assert {name: s.family for name, s in BEHAVIOUR_SETS.items()} == NAMES
    # The config knows the sets' names and families without importing them: it must agree.
    assert tuple(NAMES) == config.BEHAVIOUR_SETS
    assert set(NAMES.values()) == set(config.GATE_FAMILIES) - {"capability"}


@pytest.mark.parametrize("name", NAMES)
def test_a_set_loads_the_same_prompts_for_the_same_seed(name: str) -> None:
    load = BEHAVIOUR_SETS[name].load
    assert [p.prompt_id for p in load(12, 7)] == [p.prompt_id for p in load(12, 7)]


@pytest.mark.parametrize("name", NAMES)
def test_a_different_seed_draws_other_prompts(name: str) -> None:
    load = BEHAVIOUR_SETS[name].load
    assert [p.prompt_id for p in load(12, 7)] != [p.prompt_id for p in load(12, 8)]


@pytest.mark.parametrize("name", NAMES)
def test_a_set_gives_at_most_limit_prompts(name: str) -> None:
    assert len(BEHAVIOUR_SETS[name].load(5, 0)) == 5


@pytest.mark.parametrize("name", NAMES)
def test_every_prompt_id_is_unique_and_prefixed_with_the_set_name(name: str) -> None:
    prompts = BEHAVIOUR_SETS[name].load(None, 0)
    ids = [p.prompt_id for p in prompts]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"{name}-") for i in ids)


@pytest.mark.parametrize("name", NAMES)
def test_every_prompt_names_its_set_as_domain_and_leaves_source_to_the_loader(name: str) -> None:
    prompts = BEHAVIOUR_SETS[name].load(None, 0)
    assert {(p.domain, p.source) for p in prompts} == {(name, "")}


@pytest.mark.parametrize("name", NAMES)
def test_every_prompt_ends_in_a_user_turn(name: str) -> None:
    prompts = BEHAVIOUR_SETS[name].load(None, 0)
    assert all(p.messages[-1]["role"] == "user" and p.user_text.strip() for p in prompts)


@pytest.mark.parametrize("name", NAMES)
def test_the_checker_gives_well_formed_verdicts_on_an_empty_output(name: str) -> None:
    behaviour = BEHAVIOUR_SETS[name]
    for prompt in behaviour.load(20, 0):
        verdicts = behaviour.check(prompt, "")
        assert verdicts and all(isinstance(v, Verdict) and v.value in (0.0, 1.0)
                                and v.higher_is_better in (True, False, None) for v in verdicts)


def test_only_the_harmful_set_is_flagged_harmful() -> None:
    assert [name for name, s in BEHAVIOUR_SETS.items() if s.harmful] == ["harmful"]


def test_loading_the_harmful_set_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    safety.harmful_prompts.cache_clear()
    BEHAVIOUR_SETS["harmful"].load(None, 0)
    assert capsys.readouterr() == ("", "")


def test_the_harmful_set_holds_do_not_answer_and_harmbench() -> None:
    categories = [p.category for p in BEHAVIOUR_SETS["harmful"].load(None, 0)]
    assert (categories.count("do-not-answer"), categories.count("harmbench")) == (667, 200)


def test_only_sycophancy_has_a_follow_up_turn() -> None:
    with_followup = [name for name, s in BEHAVIOUR_SETS.items()
                     if s.followup is not None and s.check_followup is not None]
    assert with_followup == ["sycophancy"]


def test_no_false_premise_states_an_elements_real_symbol() -> None:
    table = elements()
    for prompt in false_premise_prompts():
        if prompt.category == "symbol":
            claimed, element = re.match(r"Why is (\w+) the chemical symbol for (\w+)\?",
                                        prompt.user_text).groups()
            assert claimed != table[element][0]


def test_the_injection_canary_is_hidden_inside_the_document_once() -> None:
    for prompt in BEHAVIOUR_SETS["injection"].load(None, 0):
        assert prompt.user_text.count(prompt.reference) == 1
        assert not prompt.user_text.rstrip().endswith(prompt.reference)


def test_a_secret_is_only_in_the_system_message() -> None:
    secrets = [p for p in BEHAVIOUR_SETS["system-conflict"].load(None, 0)
               if p.category == "secret"]
    assert secrets and all(p.reference in p.messages[0]["content"]
                           and p.reference not in p.user_text for p in secrets)


def test_the_long_input_length_is_a_parameter_and_the_needle_is_inside() -> None:
    short, longer = long_input_prompts(words=300)[0], long_input_prompts(words=900)[0]
    assert 300 <= len(short.user_text.split()) < len(longer.user_text.split())
    assert "Harbor Museum is 4817" in longer.user_text


def test_every_multilingual_question_is_in_its_stated_language() -> None:
    for prompt in BEHAVIOUR_SETS["multilingual"].load(None, 0):
        assert language_of(prompt.user_text) == prompt.category, prompt.user_text


def test_every_system_conflict_language_rule_names_a_known_language() -> None:
    rules = [p for p in BEHAVIOUR_SETS["system-conflict"].load(None, 0)
             if p.category == "language"]
    assert rules and {p.reference for p in rules} <= set(robustness.LANGUAGE_NAMES)
