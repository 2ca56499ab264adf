"""Capability preservation: lm-eval prompt formats of the offline tasks, log-likelihood scoring
and perplexity on tiny-mistral, and the regression gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lorascope.config import EvalConfig
from lorascope.evaluation.capability import (
    ChoiceItem,
    boolq_passages,
    continuation_ids,
    load_task,
    passage_nll,
    score_items,
    sequence_logprobs,
)
from lorascope.evaluation.gate import gate_verdicts


@pytest.fixture(scope="module")
def tiny(tiny_mistral_dir):
    from lorascope.models.loader import load_model

    return load_model(tiny_mistral_dir)


def test_hellaswag_uses_lm_evals_query_and_cleaned_endings():
    (item,) = load_task("hellaswag", 1)
    assert item.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert item.choices[3] == " starts pulling up roofing on a roof."
    assert (len(item.choices), item.gold) == (4, 3)


def test_hellaswag_drops_wikihow_bracket_artifacts():
    items = load_task("hellaswag", 400)
    assert not any("[" in text for item in items for text in [item.context, *item.choices])


def test_boolq_asks_the_question_after_the_passage_with_no_yes_choices():
    (item,) = load_task("boolq", 1)
    assert item.context.endswith("\nQuestion: does ethanol take more energy make that produces?"
                                 "\nAnswer:")
    assert item.choices == [" no", " yes"]
    assert item.gold == 0


def test_mmlu_interleaves_subjects_and_uses_lm_evals_zero_shot_template():
    items = load_task("mmlu", 57)
    assert len({item.item_id.split("/")[0] for item in items}) == 57
    first = items[0]
    assert first.context.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra."
        "\n\nFind the degree")
    assert first.context.endswith("\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert (first.choices, first.gold) == ([" A", " B", " C", " D"], 1)


def test_load_task_names_the_known_tasks_for_an_unknown_one():
    with pytest.raises(ValueError, match="known: arc_challenge, arc_easy, boolq, hellaswag"):
        load_task("hellaswagg", 1)


def test_batched_logprobs_equal_one_request_at_a_time(tiny):
    model, tokenizer = tiny
    requests = [continuation_ids(tokenizer, "Question: Is ice cold?\nAnswer:", c)
                for c in (" yes", " no, it is warm most of the time")]
    batched = sequence_logprobs(model, requests)
    single = [sequence_logprobs(model, [r])[0] for r in requests]
    assert batched == pytest.approx(single, abs=1e-4)
    assert all(value < 0 for value in batched)


def test_score_items_takes_the_argmax_and_the_length_normalized_argmax(tiny):
    model, tokenizer = tiny
    item = ChoiceItem("x", "Question: Name a colour.\nAnswer:",
                      [" red", " a very long answer that goes on and on", " blue"], gold=0)
    (row,) = score_items(model, tokenizer, [item], batch_size=2)
    totals = np.array(sequence_logprobs(
        model, [continuation_ids(tokenizer, item.context, c) for c in item.choices]))
    # lm-eval divides by the choice's characters, without the space before it.
    per_char = totals / np.array([len(c) - 1 for c in item.choices])
    assert row == {"item_id": "x", "correct": bool(np.argmax(totals) == 0),
                   "correct_norm": bool(np.argmax(per_char) == 0)}


def test_passage_nll_scores_every_token_after_the_first_up_to_max_tokens(tiny):
    model, tokenizer = tiny
    passages = boolq_passages(2)
    rows = passage_nll(model, tokenizer, passages, max_tokens=16)
    ids = tokenizer.encode(passages[0][1])
    assert rows[0]["item_id"] == passages[0][0] and rows[0]["tokens"] == 16
    expected = -sequence_logprobs(model, [(ids[:1], ids[1:17])])[0]
    assert rows[0]["nll"] == pytest.approx(expected, rel=1e-4)
    # A random model is near-uniform over the vocabulary: perplexity of order 32 000.
    assert 1_000 < math.exp(rows[0]["nll"] / rows[0]["tokens"]) < 1_000_000


def test_boolq_passages_are_distinct_and_taken_from_the_end():
    passages = boolq_passages(5)
    assert len({text for _, text in passages}) == 5
    assert passages[0][0] == "boolq/3269"


def preservation_row(delta, low, high):
    return {"evaluation_id": "e", "run_id": "r", "task": "arc_easy", "delta_acc": delta,
            "delta_acc_ci_low": low,
            "delta_acc_ci_high": high, "delta_acc_norm": 0.0, "delta_acc_norm_ci_low": -0.1,
            "delta_acc_norm_ci_high": 0.1}


@pytest.mark.parametrize(("delta", "low", "high", "require_ci", "failed"), [
    (-0.10, -0.15, -0.05, True, True),    # big drop, CI below 0
    (-0.10, -0.25, 0.05, True, False),    # big drop, but the CI includes 0
    (-0.10, -0.25, 0.05, False, True),    # ... which counts when the CI is not required
    (-0.03, -0.05, -0.01, True, False),   # a real drop, within the allowed 0.05
    (0.10, 0.05, 0.15, True, False),      # an improvement
])
def test_gate_fails_a_task_only_beyond_the_allowed_drop_with_statistical_support(
    delta, low, high, require_ci, failed
):
    settings = EvalConfig(gate_max_drop=0.05, gate_require_ci=require_ci)
    verdicts = gate_verdicts([preservation_row(delta, low, high)], settings)
    assert [(v["metric"], v["failed"]) for v in verdicts] == [("acc", failed), ("acc_norm", False)]


def gate_context(tmp_path, gate: str):
    from lorascope.config import parse_config
    from lorascope.runs import RunContext

    config = parse_config({"eval": {"gate": gate, "gate_max_drop": 0.05}})
    return RunContext(run_id="r", config=config, home=tmp_path, model_path=tmp_path,
                      data_hash="", code_version="")


def write_drop(context):
    from lorascope import warehouse

    # base right on all 20 items, tuned wrong on 10 of them: delta -0.5, CI well below 0.
    warehouse.write_rows(context.warehouse, "capability_items", [
        {"evaluation_id": context.evaluation_id, "run_id": "r", "variant": v,
         "task": "arc_easy", "item_id": str(i), "correct": v == "base" or i % 2 == 0,
         "correct_norm": True}
        for v in ("base", "tuned") for i in range(20)
    ])


def test_gate_fail_records_the_verdicts_then_raises_naming_task_delta_and_ci(tmp_path):
    from lorascope import warehouse
    from lorascope.evaluation.gate import CapabilityRegressionError, enforce_gate, record_gate

    context = gate_context(tmp_path, "fail")
    write_drop(context)
    message = record_gate(context, log=lambda _: None)
    with pytest.raises(CapabilityRegressionError, match=r"arc_easy acc -0\.500 \(95 % CI -0\.7"):
        enforce_gate(context.config.eval, message)
    rows = warehouse.query(context.warehouse,
                           "select task, metric, failed from capability_gate order by metric")[1]
    assert rows == [("arc_easy", "acc", True), ("arc_easy", "acc_norm", False)]


def test_gate_mark_records_the_failure_without_raising(tmp_path):
    from lorascope.evaluation.gate import enforce_gate, record_gate

    context = gate_context(tmp_path, "mark")
    write_drop(context)
    message = record_gate(context, log=lambda _: None)
    assert "eval.gate_max_drop=0.05" in message
    enforce_gate(context.config.eval, message)
