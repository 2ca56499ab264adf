"""Rows waiting for the warehouse file: when another process (a `duckdb` shell, a long
`lorascope sql`) holds the file past the lock wait, `write_rows` puts its rows here instead of
failing the step, and the next connection that writes (or a read that needs them) loads them.

A staged batch is one JSON-lines file in `<warehouse>.staging/` (next to `warehouse.duckdb`),
named `<UTC time>-<uuid>-<table>.jsonl` so that batches load in the order they were staged. A
file is written under a temporary name, synced and renamed: a batch is either whole or absent.
This module only reads and writes those files; `lorascope.warehouse` loads them.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from lorascope.files import fsync_path

SUFFIX = ".jsonl"
FAILED_SUFFIX = ".failed"


@dataclass(frozen=True)
class StagedBatch:
    path: Path

    @property
    def batch_id(self) -> str:
        return self.path.stem

    @property
    def table(self) -> str:
        return self.path.stem.split("-", 2)[2]

    @property
    def staged_at(self) -> datetime:
        return datetime.strptime(self.path.stem.split("-", 1)[0], "%Y%m%dT%H%M%S%f")


def staging_dir(warehouse: Path) -> Path:
    """`warehouse.staging/` beside `warehouse.duckdb`."""
    return warehouse.with_name(f"{warehouse.stem}.staging")


def stage_rows(warehouse: Path, table: str, rows: list[dict[str, Any]]) -> StagedBatch:
    """Write `rows` of `table` as one staged batch, durably (temp file, fsync, rename)."""
    folder = staging_dir(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"{stamp}-{uuid.uuid4().hex}-{table}{SUFFIX}"
    partial = folder / f".{final.name}.partial"
    with partial.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, default=_json_value) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, final)
    fsync_path(folder)
    return StagedBatch(final)


def pending_batches(warehouse: Path) -> list[StagedBatch]:
    """Staged batches not yet loaded, oldest first."""
    folder = staging_dir(warehouse)
    if not folder.is_dir():
        return []
    return [StagedBatch(p) for p in sorted(folder.glob(f"[0-9]*{SUFFIX}"))]


def read_rows(batch: StagedBatch) -> list[dict[str, Any]]:
    with batch.path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def set_aside(batch: StagedBatch) -> Path:
    """Rename a batch that cannot be loaded, so that it stops blocking the others."""
    failed = batch.path.with_name(batch.path.name + FAILED_SUFFIX)
    os.replace(batch.path, failed)
    return failed


def _json_value(value: Any) -> Any:
    """Timestamps as the text DuckDB casts back on insert; numpy scalars as Python numbers."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot stage a value of type {type(value).__name__}: {value!r}")
