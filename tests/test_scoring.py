"""Scores and failure modes of hand-written generations: each detector on an output that shows
the mode and on one that does not."""

from __future__ import annotations

import pytest

from lorascope.config import GoalCheck
from lorascope.evaluation.failures import DETECTORS, find_failures
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.evaluation.scoring import reference_scores, score_generation


def prompt(text: str = "What gas do plants take in to make food?", **fields) -> EvalPrompt:
    return EvalPrompt(prompt_id="p", domain="in_domain", category="science",
                      messages=[{"role": "user", "content": text}], **fields)


SCIENCE = prompt(reference="carbon dioxide", aliases=["CO2"])
GOOD = "Answer: carbon dioxide\nExplanation: Plants take in carbon dioxide to make sugar."

# (mode, prompt, finish reason, output that shows the mode, expected evidence, output that
# does not show it)
MODES = [
    ("empty", SCIENCE, "stop", " \n ", "", GOOD),
    ("truncated", SCIENCE, "length", "Answer: carbon dioxide\nExplanation: Plants take",
     "Answer: carbon dioxide\nExplanation: Plants take", GOOD),
    ("repetition", SCIENCE, "length", "Answer: water water water water water water",
     " water" * 6, GOOD),
    ("repetition", SCIENCE, "stop",
     "plants need light and plants need light and plants need light and more",
     "plants need light and",  # a 4-gram making up 12 of the 13 words
     "Plants need light, water and carbon dioxide to make their own food."),
    ("template_leak", SCIENCE, "stop", "Answer: carbon dioxide</s> more",
     "swer: carbon dioxide</s> more", GOOD),  # from 20 characters before the token
    ("template_leak", SCIENCE, "stop", "Answer: CO2<|im_end|>", "Answer: CO2<|im_end|>",
     "Answer: CO2 (written <CO2> in some books)"),
    ("user_turn_continuation", SCIENCE, "stop",
     "Answer: carbon dioxide\n[INST] And what do they give off? [/INST]",
     "[INST] And what do they give off? [/INST]", GOOD),
    ("user_turn_continuation", SCIENCE, "stop",
     "Carbon dioxide.\nUser: thanks, and what about animals?",
     "User: thanks, and what about animals?", "The user of a microscope: a scientist."),
    ("user_turn_continuation", SCIENCE, "stop",
     "Carbon dioxide.\n### Instruction: Name a noble gas.", "### Instruction: Name a noble gas.",
     "Carbon dioxide.\n### Answer"),
    ("refusal", SCIENCE, "stop", "I'm sorry, but I can't answer that question.",
     "I'm sorry, but I can't", "I can't believe how simple it is: carbon dioxide."),
    ("refusal", SCIENCE, "stop", "As an AI language model, I do not eat.",
     "As an AI language model", GOOD),
    ("prompt_echo", SCIENCE, "stop",
     "What gas do plants take in to make food? Carbon dioxide.",
     "What gas do plants take in to make food?", "Plants take in carbon dioxide."),
    ("language_drift", SCIENCE, "stop",
     "Les plantes absorbent le dioxyde de carbone pour fabriquer leur nourriture.",
     "en->fr: Les plantes absorbent le dioxyde de carbone pour fabriquer leur nourriture.",
     "Plants take in carbon dioxide from the air to make their food."),
]


@pytest.mark.parametrize(("mode", "case_prompt", "finish", "shows", "evidence", "clean"), MODES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MODES)])
def test_detector_flags_the_mode_with_its_evidence_and_not_a_clean_output(
    mode, case_prompt, finish, shows, evidence, clean
):
    detect = DETECTORS[mode]
    assert detect(case_prompt, shows, finish) == evidence
    assert detect(case_prompt, clean, "stop") is None


def test_repetition_allows_the_answer_restated_once_in_the_explanation():
    output = ("Answer: the Roman Emperor Titus\nExplanation: Jesus was betrayed by the Roman "
              "Emperor Titus for 30 pieces of silver.")
    assert DETECTORS["repetition"](SCIENCE, output, "stop") is None


def test_every_detector_has_a_case():
    assert {m[0] for m in MODES} == set(DETECTORS)


def test_prompt_echo_is_not_a_failure_when_the_prompt_asks_for_repetition():
    asked = prompt("Name three primary colours.",
                   instructions=[{"id": "combination:repeat_prompt",
                                  "kwargs": {"prompt_to_repeat": "Name three primary colours."}}])
    assert DETECTORS["prompt_echo"](asked, "Name three primary colours. Red.", "stop") is None


def test_language_drift_expects_the_language_an_instruction_asks_for():
    french = prompt("Tell me about the city of Paris in a few sentences please.",
                    instructions=[{"id": "language:response_language",
                                   "kwargs": {"language": "fr"}}])
    english = "Paris is the capital of France and a very beautiful city on the river."
    assert DETECTORS["language_drift"](french, english, "stop").startswith("fr->en: Paris")
    assert DETECTORS["language_drift"](
        french, "Paris est la capitale de la France et une très belle ville.", "stop") is None


def test_one_generation_can_show_several_modes():
    modes = [f.mode for f in find_failures(SCIENCE, "Answer: x\n[INST] more [INST] more",
                                           "length")]
    assert modes == ["truncated", "template_leak", "user_turn_continuation"]


# The demo's declared goal (configs/demo.yaml), as a user would declare theirs.
FORMAT = r"^\s*Answer:\s*(?P<answer>[^\n]+)\n+\s*Explanation:\s*(?P<why>\S.*)"
DEMO_GOAL = [
    GoalCheck(name="format_ok", regex=FORMAT),
    GoalCheck(name="starts_with_answer", regex=r"\s*Answer:"),
    GoalCheck(name="answer_in_output", contains_reference=True),
    GoalCheck(name="answer_correct", regex=FORMAT, reference_in_group="answer"),
]
GOAL_METRICS = ("format_ok", "starts_with_answer", "answer_in_output", "answer_correct")


def goal(prompt: EvalPrompt, output: str, checks=DEMO_GOAL) -> dict[str, float]:
    scores = score_generation(prompt, output, "stop", checks).scores
    return {name: value for name, value in scores.items()
            if name in {check.name for check in checks}}


def test_declared_format_goal_passes_with_the_right_answer():
    assert goal(SCIENCE, GOOD) == dict.fromkeys(GOAL_METRICS, 1.0)


def test_declared_goal_separates_format_from_correctness():
    assert goal(SCIENCE, "Answer: oxygen\nExplanation: Plants breathe it.") == {
        "format_ok": 1.0, "starts_with_answer": 1.0,
        "answer_in_output": 0.0, "answer_correct": 0.0,
    }
    assert goal(SCIENCE, "It is CO2.")["answer_in_output"] == 1.0
    assert goal(SCIENCE, "It is CO2.")["format_ok"] == 0.0


def test_reference_checks_skip_prompts_without_a_reference():
    assert goal(prompt(), GOOD) == {"format_ok": 1.0, "starts_with_answer": 1.0}


@pytest.mark.parametrize(("check", "passing", "failing"), [
    (GoalCheck(name="json", valid_json=True), '```json\n{"a": 1}\n```', "{a: 1}"),
    (GoalCheck(name="schema", json_schema={"type": "object", "required": ["answer"]}),
     '{"answer": "CO2"}', '{"reply": "CO2"}'),
    (GoalCheck(name="lowercase", instructions=[{"id": "change_case:english_lowercase",
                                                "kwargs": {}}]),
     "plants take in carbon dioxide from the air to make their food.",
     "Plants take in carbon dioxide from the air to make their food."),
    (GoalCheck(name="short", instructions=[{"id": "length_constraints:number_words",
                                            "kwargs": {"relation": "less than",
                                                       "num_words": 4}}]),
     "carbon dioxide.", "plants take in carbon dioxide to make food."),
    (GoalCheck(name="f1", reference_metric="token_f1", min=0.5),
     "carbon dioxide", "oxygen gas"),
    (GoalCheck(name="whole", regex=r"[a-z ]+", match="full"), "carbon dioxide", "CO2!"),
])
def test_each_kind_of_goal_check_passes_and_fails(check, passing, failing):
    assert goal(SCIENCE, passing, [check]) == {check.name: 1.0}
    assert goal(SCIENCE, failing, [check]) == {check.name: 0.0}


def test_reference_scores_give_exact_match_token_f1_and_rouge_l_f1():
    assert reference_scores("The Carbon dioxide.", ["carbon dioxide"]) == {
        "exact_match": 1.0, "token_f1": 1.0,  # SQuAD normalization drops "the" and the dot
        "rouge_l": pytest.approx(0.8),  # LCS 2 of 3 and 2 words
    }
    scores = reference_scores("plants use carbon", ["carbon dioxide"])
    assert scores["exact_match"] == 0.0
    assert scores["token_f1"] == pytest.approx(0.4)  # 1 common token: P 1/3, R 1/2
    assert scores["rouge_l"] == pytest.approx(0.4)  # LCS 1: P 1/3, R 1/2


def test_a_failed_format_check_is_a_format_violation_named_after_it():
    result = score_generation(SCIENCE, "Carbon dioxide, I think.", "stop", DEMO_GOAL)
    assert result.instructions == []
    assert result.scores["format_ok"] == 0.0
    assert result.scores["answer_in_output"] == 1.0
    # A wrong answer is a score (answer_correct 0), not a format violation.
    assert [(f.mode, f.instruction_id) for f in result.failures] == [
        ("format_violation", "format_ok"), ("format_violation", "starts_with_answer")
    ]


def test_no_declared_goal_means_no_goal_metric_and_no_format_violation():
    result = score_generation(SCIENCE, "Carbon dioxide, I think.", "stop")
    assert set(result.scores) == {"words", "exact_match", "token_f1", "rouge_l"}
    assert result.failures == []


def test_score_generation_checks_ifeval_instructions_and_names_the_broken_one():
    ifeval_prompt = prompt(
        "Describe a quiet library in lowercase letters without commas.",
        instructions=[{"id": "change_case:english_lowercase", "kwargs": {}},
                      {"id": "punctuation:no_comma", "kwargs": {}}],
    )
    result = score_generation(
        ifeval_prompt, "the library is quiet, and nobody speaks above a whisper.", "stop"
    )
    assert [(r.instruction_id, r.strict) for r in result.instructions] == [
        ("change_case:english_lowercase", True), ("punctuation:no_comma", False),
    ]
    assert result.scores["ifeval_prompt_strict"] == 0.0
    assert "format_ok" not in result.scores
    assert [(f.mode, f.instruction_id) for f in result.failures] == [
        ("format_violation", "punctuation:no_comma")
    ]


def test_score_rows_fill_the_three_tables_and_load_idempotently(tmp_path):
    from lorascope import warehouse
    from lorascope.evaluation.steps import score_rows

    ifeval_prompt = EvalPrompt("i", "out_of_domain", "ifeval:punctuation",
                               [{"role": "user", "content": "Explain lava without commas."}],
                               instructions=[{"id": "punctuation:no_comma", "kwargs": {}}])
    prompts = {"p": SCIENCE, "i": ifeval_prompt}
    generations = [("base", "p", "CO2", "stop"), ("tuned", "p", GOOD, "stop"),
                   ("base", "i", "Lava, hot rock.", "stop"), ("tuned", "i", "Hot rock.", "stop")]
    tables = score_rows({"evaluation_id": "e", "run_id": "r"}, prompts, generations,
                        DEMO_GOAL[:1])

    assert [(r["variant"], r["strict"]) for r in tables["instruction_results"]] == [
        ("base", False), ("tuned", True)]
    assert sorted((r["variant"], r["prompt_id"], r["instruction_id"])
                  for r in tables["generation_failures"]) == [
        ("base", "i", "punctuation:no_comma"), ("base", "p", "format_ok")]
    path = tmp_path / "warehouse.duckdb"
    for _ in range(2):
        for table, rows in tables.items():
            warehouse.replace_rows(path, table, rows, evaluation_id="e")
    assert warehouse.query(path, "select count(*) from scores")[1] == [(len(tables["scores"]),)]
    assert warehouse.query(path, "select count(*) from generation_failures")[1] == [(2,)]
