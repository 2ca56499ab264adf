"""Resolve the model, prepare the data and eval prompts of a run; record the run as started.

Preparation turns any data source into what training reads: train/valid/test.jsonl in
mlx-lm's `messages` format under `<run_dir>/data/`, exact and near duplicates removed (eval
rows win over train rows, so a duplicate never leaks), an unsplit source split by seed, and
rows over max_seq_length dropped when data.over_length is 'drop'. Every dropped row is
counted with its reason in `preparation.json`, the validation report and the warehouse
table `data_preparation`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.builtin_data import resolve_data_source, resolve_eval_prompts
from lorascope.config import DataConfig, RunConfig, dump_config
from lorascope.context import RunContext
from lorascope.data import (
    SPLITS,
    UNSPLIT,
    DataError,
    Record,
    content_text,
    dataset_hash,
    read_source,
    record_line,
    token_counts,
    tokenizer_for,
)
from lorascope.dedup import find_duplicates
from lorascope.home import warehouse_path
from lorascope.models import resolve_model
from lorascope.runinfo import code_version, run_dir, run_id_for, utc_now

DROP_REASONS = ("exact_duplicate", "near_duplicate", "too_long")
MAX_DROP_EXAMPLES = 5
PREPARATION_FILE = "preparation.json"


def split_records(
    records: list[Record], valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Record]]:
    """A seeded shuffle decides each record's split; each split keeps the source order."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = round(len(records) * valid_fraction), round(len(records) * test_fraction)
    chosen = {"valid": order[:n_valid], "test": order[n_valid : n_valid + n_test],
              "train": order[n_valid + n_test :]}
    return {split: [records[i] for i in sorted(chosen[split])] for split in SPLITS}


def _summary_row(split: str, rows_in: int) -> dict[str, Any]:
    return {"split": split, "rows_in": rows_in, **dict.fromkeys(DROP_REASONS, 0),
            "rows_out": rows_in, "examples": []}


def _drop(row: dict[str, Any], reason: str, record: Record, detail: str) -> None:
    row[reason] += 1
    row["rows_out"] -= 1
    if sum(e["reason"] == reason for e in row["examples"]) < MAX_DROP_EXAMPLES:
        row["examples"].append(
            {"file": record.file, "line": record.line, "reason": reason, "detail": detail}
        )


def prepare_splits(
    data: DataConfig, source: dict[str, list[Record]],
    count_tokens: Callable[[list[Record]], list[int]],
) -> tuple[dict[str, list[Record]], list[dict[str, Any]]]:
    """Deduplicate, split and length-filter; return the splits and a summary row per split
    (source split `all` first when the source was unsplit) with what was dropped and why."""
    summary = {split: _summary_row(split, len(records)) for split, records in source.items()}
    # Eval splits first: of two duplicates the earlier is kept, and train must not leak.
    flat = [(split, record) for split in ("valid", "test", "train", UNSPLIT)
            for record in source.get(split, [])]
    dropped = set()
    if data.dedup:
        texts = [content_text(record.messages) for _, record in flat]
        for duplicate in find_duplicates(texts, data.near_duplicate_threshold):
            split, record = flat[duplicate.index]
            kept = flat[duplicate.of][1]
            how = "same text as" if duplicate.reason == "exact_duplicate" else (
                f"{duplicate.similarity:.0%} similar to")
            detail = f"{how} {kept.file}:{kept.line}"
            _drop(summary[split], duplicate.reason, record, detail)
            dropped.add(duplicate.index)
    splits: dict[str, list[Record]] = {split: [] for split in source}
    for index, (split, record) in enumerate(flat):
        if index not in dropped:
            splits[split].append(record)
    if UNSPLIT in splits:  # a given test split stays; valid (and test) come from the rest
        test_fraction = 0.0 if "test" in splits else data.test_fraction
        carved = split_records(splits.pop(UNSPLIT), data.valid_fraction, test_fraction,
                               data.split_seed)
        if "test" in splits:
            del carved["test"]
        splits |= carved
        summary |= {split: _summary_row(split, len(records)) for split, records in carved.items()}
    if data.over_length == "drop":
        for split, records in splits.items():
            counts = count_tokens(records)
            for record, count in zip(records, counts, strict=True):
                if count > data.max_seq_length:
                    _drop(summary[split], "too_long", record,
                          f"{count} tokens > {data.max_seq_length} (data.max_seq_length)")
            splits[split] = [r for r, c in zip(records, counts, strict=True)
                             if c <= data.max_seq_length]
    ordered = [UNSPLIT, *SPLITS]
    return ({split: splits[split] for split in SPLITS if splits.get(split)},
            sorted(summary.values(), key=lambda row: ordered.index(row["split"])))


def write_prepared(folder: Path, splits: dict[str, list[Record]],
                   summary: list[dict[str, Any]]) -> None:
    """Write the split files and preparation.json to a temporary folder, then rename it."""
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for split, records in splits.items():
        with (partial / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(record_line(record) for record in records)
    (partial / PREPARATION_FILE).write_text(json.dumps(summary, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def prepare_data(
    data: DataConfig, location: Path | str, folder: Path, model_path: Path,
    chat_template: str | None, log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Read `location`, prepare it into `folder` and return the per-split summary."""
    source = read_source(location, data.columns)
    log(f"read {sum(map(len, source.values()))} rows from {location}")
    tokenizer = tokenizer_for(model_path, chat_template) if data.over_length == "drop" else None
    splits, summary = prepare_splits(data, source, lambda rs: token_counts(tokenizer, rs))
    for split in ("train", "valid"):
        if not splits.get(split):
            counts = "; ".join(f"{r['split']} {r['rows_in']} in, {r['rows_out']} out"
                               for r in summary)
            raise DataError(str(location), None,
                            f"no {split} rows left after preparation ({counts})")
    write_prepared(folder, splits, summary)
    for row in summary:
        drops = ", ".join(f"{row[r]} {r}" for r in DROP_REASONS if row[r])
        log(f"{row['split']}: {row['rows_in']} rows in, {row['rows_out']} out"
            + (f" (dropped {drops})" if drops else ""))
    return summary


def preparation_markdown(summary: list[dict[str, Any]]) -> str:
    lines = ["## Preparation", "", "| split | rows in | " + " | ".join(DROP_REASONS)
             + " | rows out |", "|---" * (len(DROP_REASONS) + 3) + "|"]
    lines += [f"| {row['split']} | {row['rows_in']} | "
              + " | ".join(str(row[r]) for r in DROP_REASONS) + f" | {row['rows_out']} |"
              for row in summary]
    examples = [(row["split"], e) for row in summary for e in row["examples"]]
    if examples:
        lines += ["", f"Dropped rows (first {MAX_DROP_EXAMPLES} per split and reason):"]
        lines += [f"- {split}: `{e['file']}:{e['line']}` {e['reason']} — {e['detail']}"
                  for split, e in examples]
    return "\n".join(lines) + "\n"


def data_error_rows(error: DataError) -> list[dict[str, Any]]:
    """The `validations` row saying the data could not be read at all."""
    return [{
        "expectation": "data_is_readable", "column_name": "", "rule": error.message,
        "success": False, "element_count": 0, "unexpected_count": 1,
        "unexpected_percent": None, "mostly": None,
        "examples": json.dumps([{"file": error.file, "line": error.line, "field": "",
                                 "rule": error.message, "value": None}]),
    }]


def prepare_run(config: RunConfig, home: Path, log: Callable[[str], None] = print) -> RunContext:
    run_id = run_id_for(config.name, config.config_hash())
    folder = run_dir(run_id, home)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(dump_config(config))
    model_path = resolve_model(config.model.source, home, progress=log)
    data_dir = folder / "data"
    run_row = {
        "run_id": run_id, "name": config.name, "status": "running", "started_at": utc_now(),
        "config_json": config.model_dump(mode="json"), "config_hash": config.config_hash(),
        "seed": config.seed, "model_source": config.model.source,
        "base_model_path": str(model_path), "adapter_path": str(folder / "adapters"),
        "data_source": config.data.source, "code_version": code_version(),
        "run_dir": str(folder),
    }
    try:
        summary = prepare_data(config.data, resolve_data_source(config.data.source, home),
                               data_dir, model_path, config.model.chat_template, log)
    except DataError as error:
        path = warehouse_path(home)
        warehouse.write_rows(path, "runs", [{**run_row, "status": "failed",
                                             "finished_at": utc_now(), "error": str(error)}])
        warehouse.delete_rows(path, "validations", run_id)
        warehouse.write_rows(path, "validations",
                             [{"run_id": run_id, **row} for row in data_error_rows(error)])
        (folder / "validation.md").write_text(f"# Data could not be read\n\n`{error}`\n")
        raise
    context = RunContext(
        run_id=run_id,
        config=config,
        home=home,
        run_dir=folder,
        model_path=model_path,
        data_dir=data_dir,
        eval_prompts_path=resolve_eval_prompts(config.data.eval_prompts, home),
        data_hash=dataset_hash(data_dir),
        code_version=run_row["code_version"],
    )
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "config_hash": config.config_hash(), "seed": config.seed,
        "model_path": str(context.model_path), "data_dir": str(data_dir),
        "data_hash": context.data_hash, "code_version": context.code_version,
    }, indent=2))
    warehouse.write_rows(context.warehouse, "runs", [{**run_row, "data_hash": context.data_hash}])
    warehouse.delete_rows(context.warehouse, "data_preparation", run_id)
    warehouse.write_rows(context.warehouse, "data_preparation",
                         [{"run_id": run_id, **row} for row in summary])
    log(f"run {run_id}: model {context.model_path}, data {data_dir} ({context.data_hash})")
    return context


def finish_run(context: RunContext, status: str, error: str | None = None) -> None:
    # INSERT OR REPLACE of some columns keeps the run's other columns.
    warehouse.write_rows(context.warehouse, "runs", [{
        "run_id": context.run_id, "status": status, "finished_at": utc_now(), "error": error,
    }])


def _retry_unless_bad_data(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(state.data, DataError)  # the same data fails the same way


@task(name="prepare", cache_policy=NO_CACHE, retries=1,
      retry_condition_fn=_retry_unless_bad_data)
def prepare_task(config: RunConfig, home: Path) -> RunContext:
    try:
        return prepare_run(config, home, log=get_run_logger().info)
    except DataError as error:
        create_markdown_artifact(f"# Data could not be read\n\n`{error}`\n",
                                 key="data-validation", description="data preparation failed")
        raise


@task(name="finish", cache_policy=NO_CACHE)
def finish_task(context: RunContext, status: str, error: str | None = None) -> None:
    finish_run(context, status, error)
