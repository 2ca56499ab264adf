"""Capability preservation: lm-eval prompt formats of the offline tasks, log-likelihood scoring
and perplexity on tiny-mistral, and the regression gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lorascope.evaluation.capability import (
    ChoiceItem,
    boolq_passages,
    choice_loglikelihoods,
    continuation_ids,
    item_requests,
    load_task,
    passage_nll,
    score_items,
    sequence_logprobs,
)


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
                   "correct_norm": bool(np.argmax(per_char) == 0),
                   "choice_logliks": pytest.approx(totals.tolist(), rel=1e-5, abs=1e-4),
                   "gold": 0}


def with_greedy_choice(model, tokenizer, item: ChoiceItem) -> ChoiceItem:
    """The item plus the model's own 3-token greedy continuation as a last choice, so that
    is-greedy flags are compared when true as well (a random model's are false otherwise)."""
    import mlx.core as mx

    ids = tokenizer.encode(item.context)
    for _ in range(3):
        ids.append(int(mx.argmax(model(mx.array([ids]))[0, -1])))
    greedy = tokenizer.decode(ids)[len(tokenizer.decode(tokenizer.encode(item.context))):]
    return ChoiceItem(item.item_id, item.context, [*item.choices, greedy], item.gold)


@pytest.fixture(scope="module")
def mlx_lm_parity(tiny, tiny_mistral_dir):
    """Some ARC-Easy and HellaSwag items scored by lorascope, 4 items to a batch, and by
    mlx-lm's lm-eval model (`mlx_lm.evaluate.MLXLM`, one question and one choice at a time).

    Both score the same tokens: MLXLM encodes the context and context + continuation apart
    and scores the whole's tokens after the context's, lm-eval's HF split and what
    `continuation_ids` does; `use_chat_template=False` makes it encode plain text with the
    tokenizer's BOS, as `tokenizer.encode` (and lm-eval's `mlxlm` on a model without a chat
    template) does."""
    from lm_eval.api.instance import Instance
    from mlx_lm.evaluate import MLXLM

    model, tokenizer = tiny
    items = [with_greedy_choice(model, tokenizer, item) for item in load_task("arc_easy", 6)]
    items += load_task("hellaswag", 4)
    ours = choice_loglikelihoods(model, [item_requests(tokenizer, i) for i in items], 4)
    reference = MLXLM(str(tiny_mistral_dir), use_chat_template=False).loglikelihood([
        Instance("loglikelihood", {}, (item.context, choice), index)
        for index, item in enumerate(items) for choice in item.choices
    ])
    return model, tokenizer, items, ours, reference


def test_choice_log_likelihoods_and_greedy_flags_equal_mlx_lms_lm_eval_model(mlx_lm_parity):
    *_, ours, reference = mlx_lm_parity
    flat = [score for item in ours for score in item]
    assert len(flat) == len(reference)
    # float32 sums of up to ~60 token log-probabilities, batched and padded vs one at a time
    assert np.allclose([s for s, _ in flat], [s for s, _ in reference], rtol=1e-5, atol=1e-4)
    assert [g for _, g in flat] == [bool(g) for _, g in reference]
    assert any(g for _, g in flat)  # else no true flag was compared


def test_a_context_token_budget_batches_one_question_at_a_time_with_the_same_scores(
    mlx_lm_parity,
):
    model, tokenizer, items, batched, _ = mlx_lm_parity
    requests = [item_requests(tokenizer, item) for item in items]
    batches = []
    alone = choice_loglikelihoods(model, requests, batch_size=4, batch_tokens=1,
                                  progress=lambda done, total: batches.append(done))
    assert batches == list(range(1, len(items) + 1))
    assert np.allclose([s for item in alone for s, _ in item],
                       [s for item in batched for s, _ in item], rtol=1e-5, atol=1e-4)


def test_score_items_gives_the_acc_and_acc_norm_of_mlx_lms_log_likelihoods(mlx_lm_parity):
    model, tokenizer, items, _, reference = mlx_lm_parity
    expected, cursor = [], 0
    for item in items:
        lls = np.array([ll for ll, _ in reference[cursor : cursor + len(item.choices)]])
        cursor += len(item.choices)
        lengths = np.array([len(choice.removeprefix(" ")) for choice in item.choices])
        expected.append((bool(np.argmax(lls) == item.gold),
                         bool(np.argmax(lls / lengths) == item.gold)))
    rows = score_items(model, tokenizer, items, batch_size=4)
    assert [(row["correct"], row["correct_norm"]) for row in rows] == expected


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
