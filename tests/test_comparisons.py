"""The compare step: one comparison per (family, metric, slice) of paired_items, the test the
data calls for, p adjusted over the evaluation, contaminated items left out, and the same
numbers however the database orders the items."""

from __future__ import annotations

import random

from lorascope.config import StatisticsConfig
from lorascope.evaluation.comparisons import comparison_rows

SETTINGS = StatisticsConfig(resamples=500)


def item(family: str, metric: str, item_id: str, base: float, tuned: float,
         kind: str = "mean", weights: tuple[float, float] = (1.0, 1.0)) -> dict:
    return {"family": family, "metric": metric, "slice": "s", "kind": kind, "eval_set": "set",
            "item_id": item_id, "base_value": base, "tuned_value": tuned,
            "base_weight": weights[0], "tuned_weight": weights[1]}


ITEMS = (
    [item("goal", "passed", f"p{i}", i % 2, (i + 1) % 3 > 0) for i in range(30)]
    + [item("goal", "rouge", f"p{i}", i / 30, (i % 7) / 7) for i in range(30)]
    + [item("test_loss", "loss", f"t{i}", 10.0 + i, 8.0 + i % 5, "ratio", (5 + i, 5 + i))
       for i in range(30)]
)


def test_each_kind_of_data_gets_its_test_and_p_is_adjusted_over_all():
    rows = {row["metric"]: row for row in comparison_rows(ITEMS, set(), SETTINGS, seed=0)}
    assert {m: r["test"] for m, r in rows.items()} == {
        "passed": "mcnemar_exact", "rouge": "paired_permutation", "loss": "paired_permutation"}
    for row in rows.values():
        assert row["n"] == 30 and row["correction"] == "holm"
        assert row["p_value"] <= row["p_adjusted"] <= min(1.0, 3 * row["p_value"]) + 1e-12


def test_the_same_items_in_another_order_give_the_same_numbers():
    shuffled = list(ITEMS)
    random.Random(1).shuffle(shuffled)
    assert comparison_rows(shuffled, set(), SETTINGS, seed=0) == comparison_rows(
        ITEMS, set(), SETTINGS, seed=0)


def test_contaminated_items_are_left_out_and_counted():
    rows = comparison_rows(ITEMS, {("set", "p0"), ("set", "p1")}, SETTINGS, seed=0)
    goal = [row for row in rows if row["family"] == "goal"]
    assert [(row["n"], row["excluded"]) for row in goal] == [(28, 2), (28, 2)]
    kept = comparison_rows(ITEMS, {("set", "p0")}, SETTINGS.model_copy(
        update={"exclude_contaminated": False}), seed=0)
    assert {row["n"] for row in kept} == {30}
