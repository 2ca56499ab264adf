"""Calibration of the multiple-choice answers: ECE, Brier and reliability bins on hand-computed
inputs and against independent implementations, the warehouse views against the Python
definitions on a real DuckDB file, the base-vs-tuned comparisons, and the log-likelihoods a
real scoring of tiny-mistral lands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_comparisons
from scipy import stats
from sklearn.metrics import brier_score_loss

from lorascope.evaluation.calibration import (
    choice_probabilities,
    ece_comparison,
    expected_calibration_error,
    reliability_bins,
)
from lorascope.evaluation.capability import ChoiceItem, item_requests, score_items
from lorascope.warehouse import query, select_rows, write_rows

EVALUATION = "cal-run-eval-1"


def item_calibration(logliks: Sequence[float], gold: int) -> dict[str, Any]:
    """The reference the views are checked against: an item's confidence (largest
    probability), whether its argmax is gold, its Brier score."""
    probabilities = choice_probabilities(logliks)
    truth = np.zeros_like(probabilities)
    truth[gold] = 1.0
    return {"confidence": float(probabilities.max()),
            "correct": bool(np.argmax(probabilities) == gold),
            "brier": float(np.sum((probabilities - truth) ** 2))}


def numpy_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE as Guo et al. (2017) write it, one bin at a time (np.digitize for the bins)."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.digitize(confidence, edges[1:-1], right=True)
    return sum(np.mean(index == b) * abs(correct[index == b].mean() - confidence[index == b].mean())
               for b in range(bins) if np.any(index == b))


def same_bins(bins: list[dict], expected: list[dict]) -> bool:
    return len(bins) == len(expected) and all(
        b == pytest.approx(e, rel=1e-12) for b, e in zip(bins, expected, strict=True))


def random_items(n: int, choices: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (n, choices)) - 10, rng.integers(0, choices, n)


def test_probabilities_are_the_softmax_of_the_summed_log_likelihoods():
    logliks = np.log([0.5, 0.3, 0.2]) - 7.0  # a common shift leaves the softmax unchanged
    assert choice_probabilities(logliks) == pytest.approx([0.5, 0.3, 0.2])


def test_an_items_confidence_correctness_and_brier_by_hand():
    row = item_calibration(np.log([0.5, 0.3, 0.2]), gold=1)
    # (0.5 - 0)² + (0.3 - 1)² + (0.2 - 0)² = 0.25 + 0.49 + 0.04
    assert row == pytest.approx({"confidence": 0.5, "correct": False, "brier": 0.78})


def test_ece_of_a_hand_computed_example():
    # bin 10 (0.9, 1]: two items at 0.95, one right: gap 0.45, weight 2/4
    # bin 7 (0.6, 0.7]: one at 0.65, right: gap 0.35; bin 6 (0.5, 0.6]: one at 0.55, right: 0.45
    ece = expected_calibration_error([0.95, 0.95, 0.65, 0.55], [1, 0, 1, 1])
    assert ece == pytest.approx(0.45 * 2 / 4 + 0.35 / 4 + 0.45 / 4)


def test_ece_of_a_perfectly_calibrated_bin_is_zero():
    assert expected_calibration_error([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)


def test_ece_matches_a_bin_by_bin_numpy_implementation():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.25, 1.0, 500)
    correct = (rng.uniform(0, 1, 500) < confidence ** 2).astype(float)
    assert expected_calibration_error(confidence, correct) == pytest.approx(
        numpy_ece(confidence, correct), rel=1e-12)


def test_ece_is_vectorized_over_leading_axes():
    rng = np.random.default_rng(1)
    confidence, correct = rng.uniform(0.3, 1, (3, 50)), rng.integers(0, 2, (3, 50))
    assert expected_calibration_error(confidence, correct) == pytest.approx(
        [numpy_ece(c, k) for c, k in zip(confidence, correct, strict=True)])


def test_brier_of_two_choices_is_twice_sklearns_binary_brier_score_loss():
    logliks, gold = random_items(200, 2, seed=2)
    rows = [item_calibration(ll, g) for ll, g in zip(logliks, gold, strict=True)]
    p_second = [choice_probabilities(ll)[1] for ll in logliks]
    # the binary Brier score counts the positive class only: half the two-class sum
    assert np.mean([r["brier"] for r in rows]) == pytest.approx(
        2 * brier_score_loss(gold, p_second), rel=1e-12)


def test_brier_of_four_choices_is_sklearns_multiclass_brier_score_loss():
    logliks, gold = random_items(200, 4, seed=3)
    rows = [item_calibration(ll, g) for ll, g in zip(logliks, gold, strict=True)]
    probabilities = np.array([choice_probabilities(ll) for ll in logliks])
    assert np.mean([r["brier"] for r in rows]) == pytest.approx(
        brier_score_loss(gold, probabilities, labels=[0, 1, 2, 3], scale_by_half=False),
        rel=1e-12)


def test_reliability_bins_count_confidence_and_accuracy_per_non_empty_bin():
    assert same_bins(reliability_bins([0.95, 0.91, 0.65, 0.55], [1, 0, 1, 1]), [
        {"bin": 5, "count": 1, "mean_confidence": 0.55, "accuracy": 1.0},
        {"bin": 6, "count": 1, "mean_confidence": 0.65, "accuracy": 1.0},
        {"bin": 9, "count": 2, "mean_confidence": 0.93, "accuracy": 0.5},
    ])


# ---------------------------------------------------------------- warehouse


def write_items(path: Path, n: int = 60, choices: int = 4) -> dict[str, tuple[np.ndarray, ...]]:
    """capability_items of one evaluation for base and tuned (tuned sharper on the same items),
    plus one base-only item and one row without log-likelihoods (scored before 0017)."""
    logliks, gold = random_items(n, choices, seed=4)
    variants = {"base": logliks, "tuned": logliks * 2.0 + 3.0 * np.eye(choices)[gold]}
    rows = [{"evaluation_id": EVALUATION, "run_id": "cal-run", "variant": variant,
             "task": "arc_easy", "item_id": f"q{i}", "correct": bool(np.argmax(ll) == g),
             "correct_norm": False, "choice_logliks": ll.tolist(), "gold": int(g)}
            for variant, scores in variants.items()
            for i, (ll, g) in enumerate(zip(scores, gold, strict=True))]
    rows.append({**rows[0], "item_id": "only-base"})
    rows.append({**rows[0], "item_id": "old", "choice_logliks": None, "gold": None})
    write_rows(path, "capability_items", rows)
    return {variant: (scores, gold) for variant, scores in variants.items()}


def python_items(scores: np.ndarray, gold: np.ndarray) -> list[dict]:
    return [item_calibration(ll, g) for ll, g in zip(scores, gold, strict=True)]


@pytest.fixture
def calibrated(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "warehouse.duckdb"
    return path, write_items(path)


def test_calibration_items_view_equals_the_python_definitions(calibrated):
    path, variants = calibrated
    rows = select_rows(path, "calibration_items", evaluation_id=EVALUATION, variant="tuned")
    by_item = {row["item_id"]: row for row in rows}
    expected = python_items(*variants["tuned"])
    assert len(rows) == len(expected)  # the row without log-likelihoods is left out
    for i, item in enumerate(expected):
        row = by_item[f"q{i}"]
        assert (row["confidence"], row["brier"]) == pytest.approx(
            (item["confidence"], item["brier"]), rel=1e-12)
        assert row["correct"] == item["correct"]


def test_calibration_view_equals_ece_brier_confidence_and_accuracy_in_python(calibrated):
    path, variants = calibrated
    (row,) = select_rows(path, "calibration", evaluation_id=EVALUATION, variant="base")
    items = python_items(*variants["base"])
    items.append(items[0])  # the base-only item counts for base's own calibration
    confidence = np.array([i["confidence"] for i in items])
    correct = np.array([i["correct"] for i in items], dtype=float)
    assert row["n"] == len(items)
    assert (row["ece"], row["brier"], row["mean_confidence"], row["accuracy"]) == pytest.approx(
        (numpy_ece(confidence, correct), np.mean([i["brier"] for i in items]),
         confidence.mean(), correct.mean()), rel=1e-12)


def test_reliability_bins_view_equals_the_python_bins(calibrated):
    path, variants = calibrated
    columns, rows = query(path, "select bin, count, mean_confidence, accuracy "
                                "from reliability_bins where variant = 'tuned' order by bin")
    items = python_items(*variants["tuned"])
    expected = reliability_bins([i["confidence"] for i in items], [i["correct"] for i in items])
    assert same_bins([dict(zip(columns, row, strict=True)) for row in rows], expected)


def test_brier_is_compared_per_task_through_paired_items(calibrated):
    path, variants = calibrated
    write_comparisons(path, EVALUATION)
    (row,) = select_rows(path, "comparisons", evaluation_id=EVALUATION, family="calibration",
                         metric="brier")
    base = [i["brier"] for i in python_items(*variants["base"])]
    tuned = [i["brier"] for i in python_items(*variants["tuned"])]
    assert (row["metric"], row["slice"], row["n"], row["test"]) == (
        "brier", "arc_easy", len(base), "paired_permutation")
    assert row["delta"] == pytest.approx(np.mean(tuned) - np.mean(base), rel=1e-9)
    assert row["ci_low"] < row["delta"] < row["ci_high"]
    assert row["p_adjusted"] is not None and row["mde"] > 0


def test_calibration_report_shows_ece_and_brier_with_the_brier_comparison(calibrated):
    from lorascope.warehouse import report_query

    path, _ = calibrated
    write_comparisons(path, EVALUATION)
    columns, rows = query(path, report_query("calibration"), {"evaluation_id": EVALUATION})
    shown = {row[1]: dict(zip(columns, row, strict=True)) for row in rows}
    assert sorted(shown) == ["brier", "ece"]
    assert shown["brier"]["p_value"] is not None
    assert shown["ece"]["delta"] == pytest.approx(shown["ece"]["tuned"] - shown["ece"]["base"])


def test_ece_comparison_of_the_views_items_is_the_bootstrap_of_the_ece_difference(calibrated):
    path, variants = calibrated
    base = python_items(*variants["base"])
    tuned = python_items(*variants["tuned"])
    columns = [[i[key] for i in items] for items in (base, tuned)
               for key in ("confidence", "correct")]
    row = ece_comparison(*columns, seed=0, resamples=2000)

    def delta(bc, bk, tc, tk, axis=-1):
        return (expected_calibration_error(tc, tk, axis=axis)
                - expected_calibration_error(bc, bk, axis=axis))

    expected = stats.bootstrap([np.asarray(c, dtype=float) for c in columns], delta,
                               paired=True, n_resamples=2000, method="BCa",
                               rng=np.random.default_rng(0)).confidence_interval
    assert row.delta == pytest.approx(numpy_ece(*map(np.asarray, columns[2:]))
                                      - numpy_ece(*map(np.asarray, columns[:2])))
    assert (row.ci_low, row.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert 0 <= row.p_value <= 1 and row.mde > 0


# ---------------------------------------------------------------- a real scoring


def test_score_items_lands_each_choices_log_likelihood_and_the_gold_index(tiny_mistral_dir,
                                                                         tmp_path):
    from lorascope.evaluation.capability import choice_loglikelihoods
    from lorascope.models.loader import load_model

    model, tokenizer = load_model(tiny_mistral_dir)
    items = [ChoiceItem("a", "Question: Name a colour.\nAnswer:", [" red", " two", " blue"], 2),
             ChoiceItem("b", "Question: Is ice cold?\nAnswer:", [" no", " yes"], 1)]
    rows = score_items(model, tokenizer, items, batch_size=2)
    expected = choice_loglikelihoods(model, [item_requests(tokenizer, i) for i in items], 2)
    path = tmp_path / "warehouse.duckdb"
    write_rows(path, "capability_items",
               [{"evaluation_id": EVALUATION, "run_id": "cal-run", "variant": variant,
                 "task": "arc_easy", **row} for variant in ("base", "tuned") for row in rows])
    landed = {r["item_id"]: r for r in select_rows(path, "calibration_items", variant="base")}
    for item, scores in zip(items, expected, strict=True):
        assert [r["gold"] for r in rows if r["item_id"] == item.item_id] == [item.gold]
        logliks = [score for score, _ in scores]
        assert landed[item.item_id]["confidence"] == pytest.approx(
            item_calibration(logliks, item.gold)["confidence"], rel=1e-9)
        assert math.isclose(sum(landed[item.item_id]["probabilities"]), 1.0, rel_tol=1e-12)


def test_ece_is_compared_per_task_with_the_bootstrap_of_its_difference(calibrated):
    path, variants = calibrated
    write_comparisons(path, EVALUATION)
    (row,) = select_rows(path, "comparisons", evaluation_id=EVALUATION, family="calibration",
                         metric="ece")
    # the items in the order the compare step puts them (the bootstrap's draws follow it)
    items = sorted(select_rows(path, "paired_items", evaluation_id=EVALUATION, metric="ece"),
                   key=lambda item: item["item_id"])
    expected = ece_comparison(*([item[key] for item in items] for key in (
        "base_value", "base_weight", "tuned_value", "tuned_weight")), seed=0, resamples=1000)
    base = python_items(*variants["base"])
    tuned = python_items(*variants["tuned"])
    assert (row["slice"], row["n"], row["test"]) == ("arc_easy", len(base), "paired_permutation")
    assert row["delta"] == pytest.approx(
        numpy_ece(*(np.array([i[key] for i in tuned], dtype=float)
                    for key in ("confidence", "correct")))
        - numpy_ece(*(np.array([i[key] for i in base], dtype=float)
                      for key in ("confidence", "correct"))), rel=1e-9)
    assert (row["ci_low"], row["ci_high"], row["p_value"], row["mde"]) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value, expected.mde), rel=1e-9)
    assert row["p_adjusted"] is not None
