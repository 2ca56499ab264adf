"""The DuckDB warehouse: tables, views and saved queries are `.sql` files next to this module,
applied and queried by the few functions below.

- `migrations/NNNN_name.sql` create and change tables; pending ones (every number not yet in
  `schema_version`, so a migration merged out of order still runs) apply in number order in
  one transaction, and `schema_version` records each.
- `macros/<name>.sql` hold `create or replace macro`s the views share (e.g. the 95 % CI
  margins), and `views/<view>.sql` one `create or replace view` each; both are rerun on every
  write connection.
- `queries/<name>.sql` are saved SELECTs for people, run by name from the CLI.
- `report/<name>.sql` are the report's sections: SELECTs with a `$run_id` (or
  `$experiment_id`) parameter.

Writers open the file, write and close it at once: a DuckDB file takes one writer process at a
time, and users query it between pipeline steps. When another process holds the file past
LOCK_WAIT_SECONDS, `write_rows` stages its rows beside the file (`staging.py`) instead of
failing, and the next connection that writes loads them, each batch once (`staged_loads`).
"""

from __future__ import annotations

import json
import numbers
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

import duckdb

from lorascope.errors import LorascopeError
from lorascope.warehouse import staging

_SQL = Path(__file__).parent
_MIGRATIONS = {int(p.name.split("_", 1)[0]): p for p in sorted(_SQL.glob("migrations/*.sql"))}


def _dependency_order(views: list[Path]) -> list[Path]:
    """Views sorted so that each comes after the views its SQL names (a view on a view)."""
    # What a view names outside comments and string literals ('test_loss' as a value is no
    # dependency on the view test_loss).
    texts = {v.stem: re.sub(r"--[^\n]*|'[^']*'", "", v.read_text(encoding="utf-8"))
             for v in views}
    needs = {
        name: {other for other in texts
               if other != name and re.search(rf"\b{re.escape(other)}\b", text)}
        for name, text in texts.items()
    }
    ordered: list[str] = []
    while len(ordered) < len(texts):
        ready = sorted(n for n in texts if n not in ordered and needs[n] <= set(ordered))
        if not ready:
            raise RuntimeError(f"views depend on each other in a cycle: {sorted(needs)}")
        ordered += ready
    return [_SQL / "views" / f"{name}.sql" for name in ordered]


_MACROS = sorted(_SQL.glob("macros/*.sql"))
_VIEWS = _dependency_order(sorted(_SQL.glob("views/*.sql")))
_QUERIES = {p.stem: p for p in sorted(_SQL.glob("queries/*.sql"))}
_REPORT_QUERIES = {p.stem: p for p in sorted(_SQL.glob("report/*.sql"))}

MIGRATION_VERSIONS = sorted(_MIGRATIONS)
SCHEMA_VERSION = MIGRATION_VERSIONS[-1]

# How long to wait for another process (a pipeline step, a `duckdb` shell) to let go of the file.
LOCK_WAIT_SECONDS = 10.0

# Within one process DuckDB shares a database instance per file, and two threads replacing the
# same view at once fail with a catalog write-write conflict; schema setup therefore takes turns.
_setup_lock = threading.Lock()


class WarehouseError(LorascopeError, duckdb.Error):
    """A warehouse operation failed; the message names the file and what went wrong."""

    exit_code = 7


class WarehouseLocked(WarehouseError):
    """Another process held the warehouse file for longer than the wait."""


def connect(
    path: Path, read_only: bool = False, *, wait: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at `path`, waiting up to `wait` seconds (LOCK_WAIT_SECONDS by
    default) while another process holds it.

    A write connection creates the file and its folder if needed, then applies pending
    migrations and (re)creates all views in one transaction, then loads any staged rows. A
    read-only connection changes nothing and needs the file to exist.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: nothing has been written there yet. Run the pipeline "
            "first, or point LORASCOPE_HOME at the folder that holds warehouse.duckdb."
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only, LOCK_WAIT_SECONDS if wait is None else wait)
    if not read_only:
        try:
            with _setup_lock:
                _set_up(con, path)
                _load_staged(con, path)
        except BaseException:
            con.close()
            raise
    return con


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting up to `wait` seconds while another process holds the file."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            if "Could not set lock" not in str(e):
                raise WarehouseError(f"Cannot open the warehouse {path}: {e}") from e
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"The warehouse {path} is still in use by another process after "
                    f"{wait:g} s. DuckDB lets one process write a file at a time: "
                    f"close the other session (a `duckdb` shell left open?) and retry.\n{e}"
                ) from e
            time.sleep(0.1)


def _set_up(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    applied = _applied_versions(con)
    if applied and max(applied) > SCHEMA_VERSION:
        raise WarehouseError(
            f"The warehouse {path} is at schema version {max(applied)}, but this lorascope "
            f"knows versions up to {SCHEMA_VERSION}: upgrade lorascope to write to it."
        )
    steps = [(p, v) for v, p in sorted(_MIGRATIONS.items()) if v not in applied]
    steps += [(p, None) for p in (*_MACROS, *_VIEWS)]
    con.begin()
    for sql_file, version in steps:
        try:
            con.execute(sql_file.read_text(encoding="utf-8"))
            if version is not None:
                con.execute(
                    "insert into schema_version values (?, ?)",
                    [version, datetime.now(timezone.utc).replace(tzinfo=None)],
                )
        except duckdb.Error as e:
            con.rollback()
            raise WarehouseError(
                f"{sql_file.relative_to(_SQL)} failed on {path}; nothing was changed: {e}"
            ) from e
    con.commit()


def _applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    (exists,) = con.execute(
        "select count(*) from duckdb_tables() where table_name = 'schema_version'"
    ).fetchone()
    if not exists:
        return set()
    return {version for (version,) in con.execute("select version from schema_version").fetchall()}


def write_rows(path: Path, table: str, rows: list[dict[str, Any]]) -> int:
    """INSERT OR REPLACE `rows` into `table` and return how many were written (or staged).

    Columns come from the dict keys, the same in every row. A row whose primary key is already
    stored overwrites the given columns and keeps the others, so loading a step again is
    idempotent. dict and list values are stored as JSON text, paths as strings.

    If another process holds the file past the lock wait, the rows are staged and loaded by
    the next connection that writes, so a long step (training, generation) never fails on a
    reader. Once rows are staged, a later write tries the file once before staging too: a file
    held for an hour stalls the step once, not at every report.
    """
    wait = 0.0 if staging.pending_batches(path) else None
    try:
        con = connect(path, wait=wait)
    except WarehouseLocked:
        if rows:
            _check_same_columns(table, rows)
            staging.stage_rows(path, table, [{c: _db_value(v) for c, v in row.items()}
                                             for row in rows])
        return len(rows)
    with con:
        return _insert(con, path, table, rows)


def load_staged(path: Path) -> None:
    """Load the rows staged for `path` now (a step's end, a report's start); WarehouseLocked,
    naming the waiting batches, if another process still holds the file."""
    pending = staging.pending_batches(path)
    if not pending:
        return
    try:
        connect(path).close()
    except WarehouseLocked as e:
        raise WarehouseLocked(
            f"{len(pending)} batch(es) of rows wait in {staging.staging_dir(path)} to be loaded "
            f"into {path}, which another process still holds; they load as soon as it is "
            f"free.\n{e}"
        ) from e


def _load_staged(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Load each staged batch and record its id in one transaction, then delete its file; a
    batch already recorded (the process died before deleting it) is only deleted."""
    for batch in staging.pending_batches(path):
        con.begin()
        try:
            (loaded,) = con.execute(
                "select count(*) from staged_loads where batch_id = ?", [batch.batch_id]
            ).fetchone()
            if not loaded:
                rows = staging.read_rows(batch)
                _insert(con, path, batch.table, rows)
                con.execute(
                    "insert into staged_loads values (?, ?, ?, ?, ?)",
                    [batch.batch_id, batch.table, len(rows), batch.staged_at,
                     datetime.now(timezone.utc).replace(tzinfo=None)],
                )
        except (ValueError, duckdb.Error) as e:
            con.rollback()
            failed = staging.set_aside(batch)
            raise WarehouseError(
                f"Staged rows {failed} could not be loaded into {path} and were set aside "
                f"(rename the file back to retry once fixed): {e}"
            ) from e
        except BaseException:
            con.rollback()
            raise
        con.commit()
        batch.path.unlink(missing_ok=True)


def replace_rows(path: Path, table: str, rows: list[dict[str, Any]], **equals: Any) -> int:
    """In one transaction, delete the rows of `table` whose columns equal `equals` (e.g.
    `evaluation_id=...`), then insert `rows`: a reader sees the old rows or the new ones, never
    neither (a step that re-scores an evaluation replaces its results this way). Returns the
    number of rows written."""
    if not equals:
        raise ValueError(f"replace_rows({table!r}): name the rows to replace, e.g. run_id=...")
    conditions = equals
    where = " and ".join(f"{_quoted(c)} = ?" for c in conditions)
    with connect(path) as con:
        _check_columns(con, table, list(conditions))
        con.begin()
        try:
            con.execute(f"delete from {_quoted(table)} where {where}",
                        [_db_value(v) for v in conditions.values()])
            written = _insert(con, path, table, rows)
        except BaseException as error:
            con.rollback()
            if isinstance(error, duckdb.Error) and not isinstance(error, WarehouseError):
                raise WarehouseError(f"Replacing rows of {table} in {path} failed: {error}") \
                    from error
            raise
        con.commit()
    return written


def _insert(
    con: duckdb.DuckDBPyConnection, path: Path, table: str, rows: list[dict[str, Any]]
) -> int:
    columns = _check_same_columns(table, rows)
    key = _check_columns(con, table, columns)
    if not rows:
        return 0
    _check_unique_keys(table, rows, key)
    values = [[_db_value(row[c]) for row in rows] for c in columns]
    # One statement over column lists: executemany runs a statement per row, about a
    # minute for 20 000 rows here, against well under a second this way.
    select = ", ".join(f"unnest(${i})" for i in range(1, len(columns) + 1))
    names = ", ".join(_quoted(c) for c in columns)
    try:
        con.execute(f"insert or replace into {_quoted(table)} ({names}) select {select}", values)
    except duckdb.Error as e:
        raise WarehouseError(f"Writing {len(rows)} rows to {table} in {path} failed: {e}") from e
    return len(rows)


def _check_same_columns(table: str, rows: list[dict[str, Any]]) -> list[str]:
    columns = list(rows[0]) if rows else []
    for number, row in enumerate(rows):
        if row.keys() != set(columns):
            raise ValueError(
                f"write_rows({table!r}): row {number} has columns {sorted(row)}, "
                f"row 0 has {sorted(columns)}; give every row the same keys."
            )
    return columns


def _check_columns(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[str]:
    """Fail with the valid names unless `table` and `columns` exist; return its primary key.

    Checked here because DuckDB 1.5 answers an unknown column in INSERT OR REPLACE with an
    internal error and a stack trace.
    """
    tables = [
        t for (t,) in con.execute("select table_name from duckdb_tables() order by 1").fetchall()
    ]
    if table not in tables:
        raise ValueError(f"No table {table!r} in the warehouse; its tables: {', '.join(tables)}.")
    known = [
        c
        for (c,) in con.execute(
            "select column_name from duckdb_columns() where table_name = ? order by column_index",
            [table],
        ).fetchall()
    ]
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(
            f"Table {table!r} has no column {', '.join(map(repr, unknown))}; "
            f"its columns: {', '.join(known)}."
        )
    key = con.execute(
        "select constraint_column_names from duckdb_constraints() "
        "where table_name = ? and constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchone()
    return key[0] if key else []


def _check_unique_keys(table: str, rows: list[dict[str, Any]], key: list[str]) -> None:
    """Refuse two rows with one primary key: within one statement DuckDB silently keeps the
    first, where INSERT OR REPLACE promises the last. A key column left out takes its default."""
    seen: dict[tuple, int] = {}
    for number, row in enumerate(rows):
        value = tuple(row.get(c) for c in key)
        if value in seen:
            raise ValueError(
                f"write_rows({table!r}): rows {seen[value]} and {number} have the same primary "
                f"key {dict(zip(key, value, strict=True))}."
            )
        seen[value] = number


def _db_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, PurePath):
        return str(value)
    return value


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def query(
    path: Path, sql: str, params: list | dict[str, Any] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run `sql` on a read-only connection; return column names and rows. `params` fill `?`
    placeholders (a list) or `$name` ones (a dict).

    Statements that write are refused by DuckDB and raise WarehouseError. Rows still staged
    are loaded first, so a read sees every write.
    """
    load_staged(path)
    with connect(path, read_only=True) as con:
        try:
            cursor = con.execute(sql, params)
        except duckdb.Error as e:
            hint = (
                " Queries only read; the pipeline writes the warehouse."
                if "read-only" in str(e)
                else ""
            )
            raise WarehouseError(f"Query on {path} failed: {e}{hint}") from e
        if cursor is None or cursor.description is None:  # only comments, or no result set
            raise WarehouseError(f"Query on {path} returned no result: is it only comments? "
                                 f"{sql.strip()[:80]!r}")
        return [d[0] for d in cursor.description], cursor.fetchall()


def select_rows(
    path: Path, relation: str, columns: Sequence[str] = (), **equals: Any
) -> list[dict[str, Any]]:
    """The rows of a table or view whose columns equal `equals`, as dicts of `columns` (all
    when empty): the pipeline's reads, built here as write_rows builds its writes."""
    selected = ", ".join(map(_quoted, columns)) or "*"
    where = " and ".join(f"{_quoted(c)} = ?" for c in equals) or "true"
    names, rows = query(path, f"select {selected} from {_quoted(relation)} where {where}",
                        [_db_value(v) for v in equals.values()])
    return [dict(zip(names, row, strict=True)) for row in rows]


def saved_query_names() -> list[str]:
    return list(_QUERIES)


def saved_query(name: str) -> str:
    """The SQL text of the saved query `name` (a file in warehouse/queries/)."""
    if name not in _QUERIES:
        raise KeyError(f"No saved query {name!r}; available: {', '.join(_QUERIES)}.")
    return _QUERIES[name].read_text(encoding="utf-8")


def report_query(name: str) -> str:
    """The SQL text of the report section `name` (a file in warehouse/report/)."""
    return _REPORT_QUERIES[name].read_text(encoding="utf-8")


def format_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    """A plain-text box table; numbers align right, cells longer than max_width are cut."""
    header = [_cell(c, max_width) for c in columns]
    body = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max(map(len, cells)) for cells in zip(header, *body, strict=True)]
    numeric = [
        any(map(_is_number, values)) and all(_is_number(v) or v is None for v in values)
        for values in zip(*rows, strict=True)
    ]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str], right: list[bool]) -> str:
        padded = (
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    lines = [rule, line(header, [False] * len(header)), rule]
    lines += [line(cells, numeric) for cells in body]
    lines.append(rule)
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    text = text.replace("\r", "").replace("\n", "⏎").replace("\t", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
