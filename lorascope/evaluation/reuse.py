"""Work reused across the evaluations of a run. Each evaluation of a run has its own id (its
eval settings' hash), but most of its work depends on far less than all of them: an answer
on the prompt, the model and the generation settings; a capability item's log-likelihoods on
the adapters and the item. So a new judge, goal or statistic costs only itself: before a step
computes anything, it copies the rows an earlier evaluation of the same run computed from the
same inputs (same adapters, same code version, the same values of the settings the step
reads), and computes only what is left."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lorascope import warehouse
from lorascope.runs import RunContext


def matching_evaluations(
    context: RunContext, settings: Sequence[str],
) -> list[str]:
    """Other evaluations of the run, newest first, whose adapters and code version are this
    evaluation's and whose eval settings named in `settings` have this evaluation's values."""
    rows = warehouse.select_rows(
        context.warehouse, "evaluations",
        ["evaluation_id", "adapter_hash", "code_version", "eval_config", "started_at"],
        run_id=context.run_id)
    by_id = {row["evaluation_id"]: row for row in rows}
    current = by_id.get(context.evaluation_id)
    if current is None:
        return []
    wanted = context.config.eval.model_dump(mode="json")
    matches = []
    for row in rows:
        if row["evaluation_id"] == context.evaluation_id:
            continue
        if (row["adapter_hash"], row["code_version"]) != (current["adapter_hash"],
                                                         current["code_version"]):
            continue
        recorded = json.loads(row["eval_config"] or "{}")
        if all(recorded.get(key) == wanted.get(key) for key in settings):
            matches.append(row)
    matches.sort(key=lambda row: row["started_at"], reverse=True)
    return [row["evaluation_id"] for row in matches]


def reuse_rows(
    context: RunContext, table: str, settings: Sequence[str], key: Sequence[str],
    wanted: Callable[[dict[str, Any]], bool] = lambda row: True,
    log: Callable[[str], None] = print, **equals: Any,
) -> int:
    """Copy into this evaluation the rows of `table` (those whose columns equal `equals`, and
    for which `wanted(row)`) that matching evaluations computed and this one lacks, identified
    by the columns `key`. Returns how many rows were copied."""
    have = {tuple(row[c] for c in key) for row in warehouse.select_rows(
        context.warehouse, table, key, evaluation_id=context.evaluation_id, **equals)}
    copied: list[dict[str, Any]] = []
    sources = []
    for donor in matching_evaluations(context, settings):
        rows = [row for row in warehouse.select_rows(context.warehouse, table,
                                                     evaluation_id=donor, **equals)
                if tuple(row[c] for c in key) not in have and wanted(row)]
        for row in rows:
            have.add(tuple(row[c] for c in key))
            copied.append({**row, "evaluation_id": context.evaluation_id})
        if rows:
            sources.append(donor)
    if copied:
        warehouse.write_rows(context.warehouse, table, copied)
        detail = " ".join(f"{k}={v}" for k, v in equals.items())
        log(f"reused {len(copied)} {table} rows{' (' + detail + ')' if detail else ''} from "
            f"evaluation {', '.join(sources)} (same adapters, code and settings)")
    return len(copied)
