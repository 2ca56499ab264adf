"""Work reused across the evaluations of a run. Each evaluation of a run has its own id (its
eval settings' hash), but most of its work depends on far less than all of them: an answer
on the prompt, the model and the generation settings; a capability item's log-likelihoods on
the adapters and the item. So a new judge, goal or statistic costs only itself: before a step
computes anything, it copies the rows an earlier evaluation of the same run computed from the
same inputs (same adapters, same code version, the same values of the settings the step
reads), and computes only what is left.

The base model's rows do not depend on the adapters at all, so they are reused across runs
too: from any run with the same base model, data, seed and the training settings the base's
test loss reads (`BASE_INPUTS`). The members of a sweep over the adapters' settings (rank,
alpha, layers, learning rate, steps) share all of them and evaluate the base once."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lorascope import warehouse
from lorascope.runs import RunContext

# Config values (section, or section and field) the base model's evaluation rows depend on,
# besides the evaluation settings each step names: the model (and its quantization and chat
# template), the data and how it is split and cut, the seed that samples it, and the two
# training settings the test loss reads.
BASE_INPUTS = (("model",), ("data",), ("seed",), ("train", "mask_prompt"),
               ("train", "batch_size"))


def base_inputs(config: dict[str, Any]) -> list[Any]:
    values = []
    for path in BASE_INPUTS:
        value: Any = config
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value)
    return values


def runs_with_the_same_base(context: RunContext) -> set[str]:
    """Other runs whose base-model rows this run's would equal: the same data (by hash) and
    the same `BASE_INPUTS` values."""
    wanted = base_inputs(context.config.model_dump(mode="json"))
    rows = warehouse.select_rows(context.warehouse, "runs",
                                 ["run_id", "config_json", "data_hash"])
    return {row["run_id"] for row in rows
            if row["run_id"] != context.run_id and row["data_hash"] == context.data_hash
            and base_inputs(json.loads(row["config_json"] or "{}")) == wanted}


def matching_evaluations(
    context: RunContext, settings: Sequence[str], base: bool = False,
) -> list[tuple[str, str]]:
    """(run id, evaluation id) of other evaluations, newest first, whose code version is
    this evaluation's and whose eval settings named in `settings` have this evaluation's
    values: of this run with the same adapters, and with `base` (rows of the base model)
    then of the runs with the same base (`runs_with_the_same_base`)."""
    rows = warehouse.select_rows(
        context.warehouse, "evaluations",
        ["evaluation_id", "run_id", "adapter_hash", "code_version", "eval_config",
         "started_at"])
    by_id = {row["evaluation_id"]: row for row in rows}
    current = by_id.get(context.evaluation_id)
    if current is None:
        return []
    others = runs_with_the_same_base(context) if base else set()
    wanted = context.config.eval.model_dump(mode="json")
    matches = []
    for row in rows:
        if row["evaluation_id"] == context.evaluation_id:
            continue
        same_run = row["run_id"] == context.run_id
        if not (same_run and row["adapter_hash"] == current["adapter_hash"]
                or row["run_id"] in others):
            continue
        if row["code_version"] != current["code_version"]:
            continue
        recorded = json.loads(row["eval_config"] or "{}")
        if all(recorded.get(key) == wanted.get(key) for key in settings):
            matches.append(row)
    # this run's own first, then the others; newest first within each
    matches.sort(key=lambda row: (row["run_id"] == context.run_id, row["started_at"]),
                 reverse=True)
    return [(row["run_id"], row["evaluation_id"]) for row in matches]


def reuse_rows(
    context: RunContext, table: str, settings: Sequence[str], key: Sequence[str],
    wanted: Callable[[dict[str, Any]], bool] = lambda row: True,
    log: Callable[[str], None] = print, **equals: Any,
) -> int:
    """Copy into this evaluation the rows of `table` (those whose columns equal `equals`, and
    for which `wanted(row)`) that matching evaluations computed and this one lacks, identified
    by the columns `key`; rows of the base model (`variant="base"`) from other runs with the
    same base too. Returns how many rows were copied."""
    have = {tuple(row[c] for c in key) for row in warehouse.select_rows(
        context.warehouse, table, key, evaluation_id=context.evaluation_id, **equals)}
    copied: list[dict[str, Any]] = []
    sources = []
    across_runs = False
    for run_id, donor in matching_evaluations(context, settings,
                                              base=equals.get("variant") == "base"):
        rows = [row for row in warehouse.select_rows(context.warehouse, table,
                                                     evaluation_id=donor, **equals)
                if tuple(row[c] for c in key) not in have and wanted(row)]
        for row in rows:
            have.add(tuple(row[c] for c in key))
            copied.append({**row, "evaluation_id": context.evaluation_id,
                           **({"run_id": context.run_id} if "run_id" in row else {})})
        if rows:
            own = run_id == context.run_id
            across_runs |= not own
            sources.append(f"evaluation {donor}" if own else f"run {run_id}'s evaluation {donor}")
    if copied:
        warehouse.write_rows(context.warehouse, table, copied)
        detail = " ".join(f"{k}={v}" for k, v in equals.items())
        same = ("same base model, data, code and settings" if across_runs
                else "same adapters, code and settings")
        log(f"reused {len(copied)} {table} rows{' (' + detail + ')' if detail else ''} from "
            f"{', '.join(sources)} ({same})")
    return len(copied)
