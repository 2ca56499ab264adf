"""Instruction data: read any supported source and normalize every row to chat messages.

Sources are JSONL in mlx-lm's formats (`messages`, `prompt`/`completion`, `text`), Alpaca's
`instruction`/`input`/`output`, ShareGPT's `conversations` (`from`/`value`), the same rows in
Parquet, CSV or a JSON array, a folder saved with `datasets.save_to_disk`, or `hf:ID` for a
Hugging Face Hub dataset. `DataConfig.columns` renames odd column names to these.

Each row becomes a `Record` that remembers its file and line (for Parquet, JSON arrays and
saved datasets the 1-based row number), so every later complaint — a Great Expectations
failure, a template error — points at the row to fix. Prepared split files carry that
origin along (`lorascope_origin`), so it survives preparation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SPLITS = ("train", "valid", "test")
REQUIRED_SPLITS = ("train", "valid")
UNSPLIT = "all"  # the split name of a source that still has to be split
SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "validation"), "test": ("test",)}
FILE_TYPES = (".jsonl", ".json", ".parquet", ".csv")
ROLES = frozenset({"system", "user", "assistant", "tool"})
USER = frozenset({"user"})
ROLE_LETTERS = {"system": "s", "user": "u", "assistant": "a", "tool": "t"}
# After an optional system turn: user, then the assistant's answer, which may call tools
# (assistant, tool, …, assistant) before it ends; repeated, ending on the assistant.
ALTERNATING_ROLES = re.compile(r"s?(u(at+)*a)+")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "model": "assistant", "system": "system", "tool": "tool",
    "function_response": "tool", "observation": "tool",
}
# Detected in this order (mlx-lm's own order first); the keys each format needs.
FORMATS = {
    "prompt/completion": ("prompt", "completion"),
    "messages": ("messages",),
    "conversations": ("conversations",),
    "text": ("text",),
    "alpaca": ("instruction", "output"),
}
ORIGIN_KEY = "lorascope_origin"
# A longer line is almost surely a whole JSON document saved as .jsonl, not one example.
MAX_LINE_BYTES = 16 * 2**20
TOKENIZE_CHUNK = 2048

FRAME_COLUMNS = [
    "split",
    "file",
    "line",
    "n_messages",
    "roles_valid",
    "roles_alternate",
    "empty_assistant",
    "valid_utf8",
    "token_count",
    "normalized_text",
    "is_duplicate",
    "leaks_into_eval",
    "label",
    "label_share",
]

Message = dict[str, Any]


class DataError(ValueError):
    """A problem in a data source, located as `path:line: message` (or `path: message`)."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass(frozen=True)
class Record:
    file: str
    line: int
    messages: list[Message]
    label: str | None = None


# ---------------------------------------------------------------- formats


def detect_format(obj: dict[str, Any]) -> str:
    for name, keys in FORMATS.items():
        if all(key in obj for key in keys):
            return name
    raise ValueError(
        "no known format: expected 'messages', 'conversations', 'prompt'+'completion', "
        f"'text' or 'instruction'+'output'; found keys {sorted(obj)} "
        "(map other names with data.columns)"
    )


def _string_fields(obj: dict[str, Any], *names: str) -> list[str]:
    for name in names:
        if not isinstance(obj.get(name, ""), str):
            raise ValueError(f"field {name!r} must be a string, got {type(obj[name]).__name__}")
    return [obj.get(name, "") for name in names]


def _turns(obj: dict[str, Any], name: str) -> list[Message]:
    """The turns in field `name` as messages. A turn is {role, content} or ShareGPT's
    {from, value}, in either field; CSV cells hold the list as JSON text."""
    turns = obj[name]
    if isinstance(turns, str):
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError:
            turns = None
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"field {name!r} must be a non-empty list of {{role, content}}")
    messages = []
    for index, turn in enumerate(turns):
        if isinstance(turn, dict) and isinstance(turn.get("role"), str):
            messages.append(dict(turn))
        elif isinstance(turn, dict) and isinstance(turn.get("from"), str):
            role = SHAREGPT_ROLES.get(turn["from"].lower(), turn["from"])
            messages.append({"role": role, "content": turn.get("value")})
        else:
            raise ValueError(f"{name}[{index}] must be an object with a string 'role' "
                             "(or ShareGPT's 'from')")
    return messages


def _with_system(obj: dict[str, Any], messages: list[Message]) -> list[Message]:
    """Put a top-level `system` string (common in Alpaca and ShareGPT exports) first."""
    (system,) = _string_fields(obj, "system")
    if system.strip() and messages[0].get("role") != "system":
        return [{"role": "system", "content": system}, *messages]
    return messages


def to_messages(obj: dict[str, Any], kind: str | None = None) -> list[Message]:
    """Chat messages for one row in any supported format (`kind`: its detected format)."""
    kind = kind or detect_format(obj)
    if kind == "text":
        (text,) = _string_fields(obj, "text")
        return [{"role": "assistant", "content": text}]
    if kind in ("messages", "conversations"):
        messages = _turns(obj, kind)
    elif kind == "prompt/completion":
        prompt, completion = _string_fields(obj, "prompt", "completion")
        messages = [{"role": "user", "content": prompt},
                    {"role": "assistant", "content": completion}]
    else:
        instruction, extra, output = _string_fields(obj, "instruction", "input", "output")
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return _with_system(obj, messages)


def rename_fields(obj: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """`obj` with source columns renamed to standard fields (`columns`: standard → source)."""
    if not columns:
        return obj
    renamed = {key: value for key, value in obj.items() if key not in columns.values()}
    for standard, source in columns.items():
        if source in obj:
            renamed[standard] = obj[source]
    return renamed


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
        except ValueError as error:
            raise DataError(file, line, str(error)) from None
        origin = obj.get(ORIGIN_KEY)
        ours = isinstance(origin, dict) and {"file", "line"} <= origin.keys()
        where = (origin["file"], origin["line"]) if ours else (file, line)
        label = obj.get("label")
        records.append(Record(*where, messages, None if label is None else str(label)))
    if not records:
        raise DataError(file, 1, "empty file; expected at least one row")
    return records


# ---------------------------------------------------------------- readers


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


# ---------------------------------------------------------------- prepared split folders


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
    """One line of a prepared split file: mlx-lm's `messages` format plus the origin."""
    row: dict[str, Any] = {"messages": record.messages}
    if record.label is not None:
        row["label"] = record.label
    row[ORIGIN_KEY] = {"file": record.file, "line": record.line}
    line = json.dumps(row, ensure_ascii=False)
    # Lone surrogates cannot be written as UTF-8; \u escapes keep them for the valid_utf8 rule.
    return (line if is_valid_utf8(line) else json.dumps(row)) + "\n"


def dataset_hash(folder: str | Path) -> str:
    """sha256 over the split files' names and bytes, in name order; first 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(split_files(Path(folder)).values()):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- facts per row


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def content_text(messages: list[Message], roles: frozenset[str] = ROLES) -> str:
    """Normalized concatenation of the contents of messages with one of `roles`."""
    return normalize(
        "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in roles)
    )


def roles_alternate(messages: list[Message]) -> bool:
    letters = "".join(ROLE_LETTERS.get(m.get("role"), "?") for m in messages)
    return ALTERNATING_ROLES.fullmatch(letters) is not None


def has_empty_assistant(messages: list[Message]) -> bool:
    """An assistant turn with no text (turns that only call tools are not empty)."""
    return any(
        m.get("role") == "assistant"
        and not str(m.get("content") or "").strip()
        and not m.get("tool_calls")
        for m in messages
    )


def is_valid_utf8(text: str) -> bool:
    """False for lone surrogates, which JSON's \\ud800 escapes can smuggle into a str."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def tokenizer_for(model_path: Path, chat_template: str | None) -> Any:
    """The model's tokenizer alone (validation needs token counts, not weights)."""
    from transformers import AutoTokenizer

    from lorascope.chat import ensure_chat_template

    return ensure_chat_template(AutoTokenizer.from_pretrained(str(model_path)), chat_template)


def _rendered(tokenizer: Any, records: list[Record]) -> list[str]:
    try:
        return tokenizer.apply_chat_template([r.messages for r in records], tokenize=False)
    except Exception:  # jinja and tokenizer errors vary; find the record that caused it
        for record in records:
            try:
                tokenizer.apply_chat_template(record.messages, tokenize=False)
            except Exception as error:
                raise DataError(record.file, record.line,
                                f"the chat template cannot format this record: {error}") from None
        raise


def token_counts(
    tokenizer: Any, records: list[Record], progress: Callable[[int, int], None] | None = None
) -> list[int]:
    """Tokens per record with the chat template applied, as `chat.conversation_tokens` does.

    Rendered and encoded in batches: the same ids as one `apply_chat_template` call per row
    (which renders, then encodes without adding special tokens), about 3× faster.
    """
    from lorascope.chat import hf_tokenizer

    inner = hf_tokenizer(tokenizer)
    counts: list[int] = []
    for start in range(0, len(records), TOKENIZE_CHUNK):
        texts = _rendered(inner, records[start : start + TOKENIZE_CHUNK])
        # Lone surrogates crash the Rust tokenizer; such rows fail the valid_utf8 rule anyway.
        texts = [t if is_valid_utf8(t) else t.encode("utf-8", "replace").decode() for t in texts]
        encoded = inner.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        counts += [len(e.ids) for e in encoded]
        if progress:
            progress(len(counts), len(records))
    return counts


def build_validation_frame(
    splits: dict[str, list[Record]], tokenizer: Any,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per record with the facts the instruction-data expectations check;
    `progress(done, total)` follows the tokenization, the slow part.

    `token_count` uses the model's chat template, the same tokens training sees;
    `label_share` is the share of the row's label among its split's labelled rows.
    """
    eval_prompts = {
        content_text(record.messages, USER)
        for split in ("valid", "test")
        for record in splits.get(split, [])
    }
    records = [record for split_records in splits.values() for record in split_records]
    counts = iter(token_counts(tokenizer, records, progress))
    seen_in_train: set[str] = set()
    rows = []
    for split, split_records in splits.items():
        labels = pd.Series([r.label for r in split_records], dtype=object)
        shares = labels.map(labels.value_counts(normalize=True))
        for record, share in zip(split_records, shares, strict=True):
            text = content_text(record.messages)
            valid_utf8 = is_valid_utf8(text)
            if not valid_utf8:  # pandas' Arrow-backed strings cannot hold lone surrogates
                text = text.encode("utf-8", "replace").decode()
            prompt = content_text(record.messages, USER)
            is_train = split == "train"
            rows.append(
                {
                    "split": split,
                    "file": record.file,
                    "line": record.line,
                    "n_messages": len(record.messages),
                    "roles_valid": all(m.get("role") in ROLES for m in record.messages),
                    "roles_alternate": roles_alternate(record.messages),
                    "empty_assistant": has_empty_assistant(record.messages),
                    "valid_utf8": valid_utf8,
                    "token_count": next(counts),
                    "normalized_text": text,
                    "is_duplicate": is_train and text in seen_in_train,
                    "leaks_into_eval": is_train and bool(prompt) and prompt in eval_prompts,
                    "label": record.label,
                    "label_share": share,
                }
            )
            if is_train:
                seen_in_train.add(text)
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)
