"""Every base-vs-tuned comparison of an evaluation, with the statistics that tell a finding
from noise: the `paired_items` view says what is compared (family, metric, slice and the
paired items), `lorascope.statistics` decides the test and interval for each, and the p-values
are adjusted over the whole evaluation, the family of comparisons its report makes. The rows
land in `comparisons`, which the views and the report read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from lorascope import statistics, warehouse
from lorascope.config import StatisticsConfig
from lorascope.evaluation.calibration import ece_comparison
from lorascope.runs import RunContext

GroupKey = tuple[str, str, str]  # family, metric, slice


def is_pass_fail(values: Iterable[float]) -> bool:
    return all(v in (0, 1) for v in values)


def compare_items(items: list[dict[str, Any]], settings: StatisticsConfig,
                  seed: int) -> statistics.Comparison:
    """The statistics of one comparison over its paired items (rows of paired_items)."""
    base = [row["base_value"] for row in items]
    tuned = [row["tuned_value"] for row in items]
    if items and items[0]["kind"] == "ratio":
        return statistics.paired_ratio(
            base, [row["base_weight"] for row in items],
            tuned, [row["tuned_weight"] for row in items],
            seed=seed, alpha=settings.alpha, power=settings.power, resamples=settings.resamples)
    if items and items[0]["kind"] == "ece":
        return ece_comparison(base, [row["base_weight"] for row in items],
                              tuned, [row["tuned_weight"] for row in items], seed=seed,
                              alpha=settings.alpha, power=settings.power,
                              resamples=settings.resamples)
    if is_pass_fail(base + tuned):
        return statistics.paired_binary(base, tuned, alpha=settings.alpha,
                                        power=settings.power, mid_p=settings.mid_p)
    return statistics.paired_continuous(base, tuned, seed=seed, alpha=settings.alpha,
                                        power=settings.power, resamples=settings.resamples)


def comparison_rows(
    items: list[dict[str, Any]], contaminated: set[tuple[str, str]],
    settings: StatisticsConfig, seed: int,
) -> list[dict[str, Any]]:
    """`comparisons` rows (without the evaluation's key columns) for paired_items rows;
    items whose (eval_set, item_id) is in `contaminated` are left out when the settings say
    so, and counted."""
    groups: dict[GroupKey, list[dict[str, Any]]] = defaultdict(list)
    excluded: dict[GroupKey, int] = defaultdict(int)
    for row in items:
        key = (row["family"], row["metric"], row["slice"])
        if settings.exclude_contaminated and (row["eval_set"], row["item_id"]) in contaminated:
            excluded[key] += 1
            groups.setdefault(key, [])
        else:
            groups[key].append(row)
    rows = []
    for (family, metric, slice_), group in sorted(groups.items()):
        # In item order, not the database's scan order: the seeded resamples then give the
        # same numbers for the same items.
        group.sort(key=lambda row: row["item_id"])
        result = compare_items(group, settings, seed)
        values = asdict(result)
        lost, gained = values.pop("discordant") or (None, None)
        rows.append({"family": family, "metric": metric, "slice": slice_,
                     "higher_is_better": group[0].get("higher_is_better") if group else None,
                     "excluded": excluded[(family, metric, slice_)],
                     "confidence": 1 - settings.alpha, "lost": lost, "gained": gained,
                     **values})
    adjusted = statistics.adjust_p_values([r["p_value"] for r in rows], settings.correction)
    for row, p in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = p
        row["correction"] = settings.correction
    return rows


def contaminated_items(context: RunContext) -> set[tuple[str, str]]:
    """(eval_set, item_id) of the evaluation's items the contamination check flagged."""
    rows = warehouse.select_rows(context.warehouse, "contamination", ["eval_set", "item_id"],
                                 evaluation_id=context.evaluation_id, contaminated=True)
    return {(row["eval_set"], row["item_id"]) for row in rows}


def compare_run(context: RunContext, log: Callable[[str], None] = print) -> int:
    """Compute every comparison of the evaluation into `comparisons` (replacing earlier ones:
    a statistic's settings may have changed). Returns the number of comparisons."""
    settings = context.config.eval.statistics
    items = warehouse.select_rows(context.warehouse, "paired_items",
                                  evaluation_id=context.evaluation_id)
    rows = comparison_rows(items, contaminated_items(context), settings, context.config.seed)
    key = {"evaluation_id": context.evaluation_id, "run_id": context.run_id}
    warehouse.replace_rows(context.warehouse, "comparisons", [{**key, **r} for r in rows],
                           evaluation_id=context.evaluation_id)
    significant = sum(1 for r in rows
                      if r["p_adjusted"] is not None and r["p_adjusted"] < settings.alpha)
    excluded = sum(r["excluded"] for r in rows)
    log(f"{len(rows)} base-vs-tuned comparisons, {significant} significant at "
        f"alpha {settings.alpha} after {settings.correction} correction"
        + (f"; {excluded} contaminated item comparisons left out" if excluded else ""))
    return len(rows)
