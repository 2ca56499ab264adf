"""Instruction data: JSONL files in mlx-lm's formats, normalized to chat messages.

Each line becomes a `Record` that remembers its file and line, so every later complaint
(a Great Expectations failure, a template error) can point at the line to fix. The formats
are mlx-lm's (`messages`, `prompt`/`completion`, `text`) plus Alpaca's
`instruction`/`input`/`output`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lorascope.chat import conversation_tokens

SPLITS = ("train", "valid", "test")
REQUIRED_SPLITS = ("train", "valid")
ROLES = frozenset({"system", "user", "assistant", "tool"})
USER = frozenset({"user"})
ROLE_LETTERS = {"system": "s", "user": "u", "assistant": "a", "tool": "t"}
# After an optional system turn: user, then the assistant's answer, which may call tools
# (assistant, tool, …, assistant) before it ends; repeated, ending on the assistant.
ALTERNATING_ROLES = re.compile(r"s?(u(at+)*a)+")

FRAME_COLUMNS = [
    "split",
    "file",
    "line",
    "n_messages",
    "roles_valid",
    "roles_alternate",
    "empty_assistant",
    "token_count",
    "normalized_text",
    "is_duplicate",
    "leaks_into_eval",
]

Message = dict[str, Any]


class DataError(ValueError):
    """A problem in a data file, located as `path:line: message`."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass(frozen=True)
class Record:
    file: str
    line: int
    messages: list[Message]


def _string_fields(obj: dict[str, Any], *names: str) -> list[str]:
    for name in names:
        if not isinstance(obj.get(name, ""), str):
            raise ValueError(f"field {name!r} must be a string, got {type(obj[name]).__name__}")
    return [obj.get(name, "") for name in names]


def to_messages(obj: dict[str, Any]) -> list[Message]:
    """Chat messages for one JSON object in any supported format (mlx-lm's order first)."""
    if "prompt" in obj and "completion" in obj:
        prompt, completion = _string_fields(obj, "prompt", "completion")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("field 'messages' must be a non-empty list of {role, content}")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValueError(f"messages[{index}] must be an object with a string 'role'")
        return [dict(m) for m in messages]
    if "text" in obj:
        (text,) = _string_fields(obj, "text")
        return [{"role": "assistant", "content": text}]
    if "instruction" in obj and "output" in obj:
        instruction, extra, output = _string_fields(obj, "instruction", "input", "output")
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    raise ValueError(
        "no known format: expected 'messages', 'prompt'+'completion', 'text' or "
        f"'instruction'+'output'; found keys {sorted(obj)}"
    )


def load_jsonl(path: str | Path) -> list[Record]:
    """Every line of a JSONL file as a Record; the first malformed line raises DataError."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise DataError(name, 1, "is a folder; give the .jsonl file inside it")
    records = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(name, number, f"not valid UTF-8 ({error.reason})") from None
            if not text.strip():
                raise DataError(name, number, "blank line; each line must be one JSON object")
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(name, number, f"broken JSON: {error}") from None
            if not isinstance(obj, dict):
                raise DataError(name, number, f"expected a JSON object, got {type(obj).__name__}")
            try:
                records.append(Record(name, number, to_messages(obj)))
            except ValueError as error:
                raise DataError(name, number, str(error)) from None
    if not records:
        raise DataError(name, 1, "empty file; expected one JSON object per line")
    return records


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


def dataset_hash(folder: str | Path) -> str:
    """sha256 over the split files' names and bytes, in name order; first 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(split_files(Path(folder)).values()):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


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


def token_count(tokenizer: Any, record: Record) -> int:
    try:
        ids, _ = conversation_tokens(tokenizer, record.messages)
    except Exception as error:  # jinja and tokenizer errors vary; all mean "cannot train"
        raise DataError(
            record.file, record.line, f"the chat template cannot format this record: {error}"
        ) from error
    return len(ids)


def build_validation_frame(splits: dict[str, list[Record]], tokenizer: Any) -> pd.DataFrame:
    """One row per record with the facts the instruction-data expectations check.

    `token_count` uses `chat.conversation_tokens`, the same tokens training sees.
    """
    eval_prompts = {
        content_text(record.messages, USER)
        for split in ("valid", "test")
        for record in splits.get(split, [])
    }
    seen_in_train: set[str] = set()
    rows = []
    for split, records in splits.items():
        for record in records:
            text = content_text(record.messages)
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
                    "token_count": token_count(tokenizer, record),
                    "normalized_text": text,
                    "is_duplicate": is_train and text in seen_in_train,
                    "leaks_into_eval": is_train and bool(prompt) and prompt in eval_prompts,
                }
            )
            if is_train:
                seen_in_train.add(text)
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)
