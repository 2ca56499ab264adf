"""Reading data sources (JSONL, JSON, CSV, Parquet, saved and Hub datasets) into Records,
and the prepared split folders (train/valid/test.jsonl) that training reads."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lorascope.data.records import (
    FILE_TYPES,
    MAX_LINE_BYTES,
    ORIGIN_KEY,
    REQUIRED_SPLITS,
    SPLIT_ALIASES,
    SPLITS,
    UNSPLIT,
    DataError,
    Record,
    detect_format,
    rename_fields,
    to_messages,
    tools_field,
)
from lorascope.data.rules import is_valid_utf8


def _not_utf8(name: str, line: int, raw: bytes, error: UnicodeDecodeError) -> DataError:
    hint = ""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:4096]:
        hint = "; it looks like UTF-16: save the file as UTF-8"
    return DataError(name, line, f"not valid UTF-8 ({error.reason}){hint}")


def _decode(raw: bytes, name: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(name, line, raw, error) from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    name = str(path)
    with path.open("rb") as lines:
        number = 0
        while raw := lines.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(
                    name, number, f"line longer than {MAX_LINE_BYTES // 2**20} MB; is this one "
                    "JSON document rather than JSON Lines (one example per line)?"
                )
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            text = _decode(raw, name, number)
            if not text.strip():
                raise DataError(name, number, "blank line; each line must be one JSON object")
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(name, number, f"broken JSON: {error}") from None


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        rows = json.loads(_utf8_text(path))
    except json.JSONDecodeError as error:
        raise DataError(str(path), error.lineno, f"broken JSON: {error.msg}") from None
    if not isinstance(rows, list):
        raise DataError(str(path), 1, "expected a JSON array of rows (name JSON Lines files "
                        ".jsonl)")
    yield from enumerate(rows, start=1)


def _utf8_text(path: Path) -> str:
    """The whole file as text; bad bytes raise DataError naming their line."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise _not_utf8(str(path), line, raw, error) from None


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(_utf8_text(path), newline=""), restval="")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise DataError(str(path), reader.line_num, f"broken CSV: {error}") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow
    import pyarrow.parquet

    try:
        rows = pyarrow.parquet.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as error:
        raise DataError(str(path), None, f"not a readable Parquet file: {error}") from None
    yield from enumerate(rows, start=1)


READERS: dict[str, Callable[[Path], Iterator[tuple[int, Any]]]] = {
    ".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows,
}


def read_file(path: str | Path, columns: dict[str, str] | None = None) -> list[Record]:
    """Every row of one data file; the first malformed row raises DataError."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), None, "is a folder where a data file was expected")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(str(path), None, f"unknown file type; use one of {', '.join(FILE_TYPES)}")
    return _records(reader(path), str(path), columns or {})


def load_jsonl(path: str | Path) -> list[Record]:
    """Every line of a JSONL file as a Record; the first malformed line raises DataError."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), 1, "is a folder; give the .jsonl file inside it")
    return _records(_jsonl_rows(path), str(path), {})


def _dataset_records(
    dataset: Any, name: str, columns: dict[str, str]
) -> list[Record]:
    return _records(enumerate(dataset, start=1), name, columns)


def _hf_splits(dataset: Any, name: str, columns: dict[str, str]) -> dict[str, list[Record]]:
    """Our splits from a `datasets` Dataset or DatasetDict (validation → valid)."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        return {UNSPLIT: _dataset_records(dataset, name, columns)}
    splits = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in dataset:
                splits[split] = _dataset_records(dataset[alias], f"{name}[{alias}]", columns)
                break
    if "train" not in splits:
        raise DataError(name, None, f"no train split; it has {', '.join(dataset)}")
    if "valid" not in splits:
        splits[UNSPLIT] = splits.pop("train")
    return splits


def _split_paths(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_ALIASES.items():
        paths = [folder / f"{a}{ext}" for a in aliases for ext in FILE_TYPES]
        present = [p for p in paths if p.exists()]
        if len(present) > 1:
            raise DataError(str(folder), None, f"{' and '.join(p.name for p in present)} "
                            f"both hold the {split} split; keep one")
        if present:
            found[split] = present[0]
    return found


def read_source(location: str | Path, columns: dict[str, str] | None = None
                ) -> dict[str, list[Record]]:
    """Records per split of a file, a folder of split files, a saved HF dataset or `hf:ID`.

    A source without a valid split comes back whole as split `all` (UNSPLIT), to be split.
    """
    columns = columns or {}
    if isinstance(location, str) and location.startswith("hf:"):
        return _hf_splits(load_hub_dataset(location), location, columns)
    path = Path(location)
    if path.is_file():
        return {UNSPLIT: read_file(path, columns)}
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        import datasets

        try:
            dataset = datasets.load_from_disk(str(path))
        except Exception as error:  # missing or corrupt Arrow files, version mismatches
            raise DataError(str(path), None, "not a readable saved Hugging Face dataset: "
                            f"{str(error).splitlines()[0] if str(error) else error!r}") from None
        return _hf_splits(dataset, str(path), columns)
    paths = _split_paths(path)
    if "train" not in paths:
        raise DataError(str(path), None, "no train file (train.jsonl, .json, .parquet or "
                        ".csv) and not a saved Hugging Face dataset")
    splits = {split: read_file(p, columns) for split, p in paths.items()}
    if "valid" not in splits:
        splits[UNSPLIT] = splits.pop("train")
    return splits


def load_hub_dataset(source: str) -> Any:
    """`hf:ID` through `datasets.load_dataset`; needs network (or HF's local cache)."""
    import datasets

    dataset_id = source.removeprefix("hf:")
    try:
        return datasets.load_dataset(dataset_id)
    except Exception as error:  # network, auth and script errors all mean "cannot load"
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            source, None, f"cannot load {dataset_id!r} from the Hugging Face Hub ({first_line}). "
            "Offline? On a machine with network run datasets.load_dataset(ID).save_to_disk(DIR) "
            "and set data.source to DIR"
        ) from None




def split_files(folder: Path) -> dict[str, Path]:
    """The split files present in `folder`; train and valid are required."""
    for split in REQUIRED_SPLITS:
        if not (folder / f"{split}.jsonl").is_file():
            raise FileNotFoundError(
                f"{folder / f'{split}.jsonl'}: not found; a data folder needs train.jsonl "
                "and valid.jsonl (test.jsonl is optional)"
            )
    paths = {split: folder / f"{split}.jsonl" for split in SPLITS}
    return {split: path for split, path in paths.items() if path.is_file()}


def load_splits(folder: str | Path) -> dict[str, list[Record]]:
    return {split: load_jsonl(path) for split, path in split_files(Path(folder)).items()}


def record_line(record: Record) -> str:
    """One line of a prepared split file in mlx-lm's format (`text`, or `messages` with the
    row's `tools`), plus the origin."""
    row: dict[str, Any] = (
        {"text": record.text} if record.text is not None else {"messages": record.messages}
    )
    if record.tools:
        row["tools"] = record.tools
    if record.label is not None:
        row["label"] = record.label
    row[ORIGIN_KEY] = {"file": record.file, "line": record.line}
    line = json.dumps(row, ensure_ascii=False)
    # Lone surrogates cannot be written as UTF-8; \u escapes keep them for the valid_utf8 rule.
    return (line if is_valid_utf8(line) else json.dumps(row)) + "\n"


def dataset_hash(folder: str | Path) -> str:
    """sha256 over the split files' names and rows, in name order; first 16 hex digits.

    Each row is hashed without its `ORIGIN_KEY` (the source file's absolute path, which moves
    with LORASCOPE_HOME): the same data prepared in another folder has the same hash, so a
    run's record and its checkpoints' resume check follow the data, not where it lies."""
    digest = hashlib.sha256()
    for path in sorted(split_files(Path(folder)).values()):
        digest.update(f"{path.name}\0".encode())
        with path.open("rb") as lines:
            for line in lines:
                digest.update(_without_origin(line) + b"\n")
    return digest.hexdigest()[:16]


def _without_origin(line: bytes) -> bytes:
    """A JSON line's row without its origin, canonically serialized; other lines as they are."""
    try:
        row = json.loads(line)
    except ValueError:
        return line.rstrip(b"\n")
    if isinstance(row, dict):
        row.pop(ORIGIN_KEY, None)
    return json.dumps(row, sort_keys=True, ensure_ascii=False).encode()


def _records(
    rows: Iterable[tuple[int, Any]], file: str, columns: dict[str, str]
) -> list[Record]:
    """Records from (line, row) pairs; one format per file; malformed rows raise DataError."""
    records, first_format = [], None
    for line, obj in rows:
        if not isinstance(obj, dict):
            raise DataError(file, line, f"expected a JSON object, got {type(obj).__name__}")
        obj = rename_fields(obj, columns)
        try:
            kind = detect_format(obj)
            if first_format is None:
                first_format = kind
            elif kind != first_format:
                raise ValueError(
                    f"format {kind!r} differs from the first row's {first_format!r}; "
                    "use one format per file"
                )
            messages = to_messages(obj, kind)
            text = obj["text"] if kind == "text" else None
            tools = None if kind == "text" else tools_field(obj)
        except ValueError as error:
            raise DataError(file, line, str(error)) from None
        origin = obj.get(ORIGIN_KEY)
        ours = isinstance(origin, dict) and {"file", "line"} <= origin.keys()
        where = (origin["file"], origin["line"]) if ours else (file, line)
        label = obj.get("label")
        records.append(Record(*where, messages, None if label is None else str(label), text,
                              tools))
    if not records:
        raise DataError(file, 1, "empty file; expected at least one row")
    return records


