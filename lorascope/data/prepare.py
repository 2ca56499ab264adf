"""Preparation: turn any data source into what training reads.

train/valid/test.jsonl in mlx-lm's `messages` format under `<run_dir>/data/`, exact and near
duplicates removed (eval rows win over train rows, so a duplicate never leaks), an unsplit
source split by seed, and rows over max_seq_length dropped when data.over_length is 'drop'
(or kept and truncated in training, as mlx-lm does, when it is 'truncate').
Every dropped or truncated row is counted with its reason in `preparation.json`, the
validation report and the warehouse table `data_preparation`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorascope.config import DataConfig
from lorascope.data.dedup import find_duplicates
from lorascope.data.records import SPLITS, UNSPLIT, DataError, Record
from lorascope.data.rules import content_text, token_counts, tokenizer_for
from lorascope.data.sources import read_source, record_line

DROP_REASONS = ("exact_duplicate", "near_duplicate", "too_long")
TRUNCATED = "truncated"  # kept, but trained on its first max_seq_length tokens only
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
            "rows_out": rows_in, TRUNCATED: 0, "examples": []}


def _drop(row: dict[str, Any], reason: str, record: Record, detail: str) -> None:
    row[reason] += 1
    if reason != TRUNCATED:
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
    if data.over_length in ("drop", "truncate"):
        reason = "too_long" if data.over_length == "drop" else TRUNCATED
        for split, records in splits.items():
            counts = count_tokens(records)
            for record, count in zip(records, counts, strict=True):
                if count > data.max_seq_length:
                    _drop(summary[split], reason, record,
                          f"{count} tokens > {data.max_seq_length} (data.max_seq_length)")
            if data.over_length == "drop":
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
    tokenizer = (tokenizer_for(model_path, chat_template) if data.over_length != "fail"
                 else None)
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
            + (f" (dropped {drops})" if drops else "")
            + (f", {row[TRUNCATED]} truncated to {data.max_seq_length} tokens"
               if row[TRUNCATED] else ""))
    return summary


def preparation_markdown(summary: list[dict[str, Any]]) -> str:
    lines = ["## Preparation", "", "| split | rows in | " + " | ".join(DROP_REASONS)
             + f" | rows out | {TRUNCATED} |", "|---" * (len(DROP_REASONS) + 4) + "|"]
    lines += [f"| {row['split']} | {row['rows_in']} | "
              + " | ".join(str(row[r]) for r in DROP_REASONS)
              + f" | {row['rows_out']} | {row.get(TRUNCATED, 0)} |"
              for row in summary]
    examples = [(row["split"], e) for row in summary for e in row["examples"]]
    if examples:
        lines += ["", f"Dropped and truncated rows (first {MAX_DROP_EXAMPLES} per split and "
                  "reason):"]
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
