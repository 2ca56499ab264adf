"""Instruction records: the supported row formats and their normalization to chat messages.

mlx-lm's four formats keep what mlx-lm trains on: `chat` (`messages`), `tools` (`messages`
plus a `tools` list of tool definitions for the chat template), `completions`
(`prompt`/`completion`) and `text` (raw text: no chat template, no roles). A `text` row
still gets a chat view (`messages`: one assistant turn) for deduplication and reports, but
training and token counts use `Record.text`.

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

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

from lorascope.errors import LorascopeError

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
    "format",
    "n_messages",
    "roles_valid",
    "roles_alternate",
    "empty_assistant",
    "empty_turn",
    "valid_utf8",
    "token_count",
    "normalized_text",
    "is_duplicate",
    "leaks_into_eval",
    "label",
    "label_share",
]

Message = dict[str, Any]


class DataError(LorascopeError, ValueError):
    """A problem in a data source, located as `path:line: message` (or `path: message`)."""

    exit_code = 4

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass(frozen=True)
class Record:
    """One row: where it came from, its chat messages, and for mlx-lm's `text` format the raw
    text it is trained on, for the `tools` format the tool definitions."""

    file: str
    line: int
    messages: list[Message]
    label: str | None = None
    text: str | None = None
    tools: list[Any] | None = None

    @property
    def format(self) -> str:
        """mlx-lm's name for the row's format: text, tools or chat (completions are chat)."""
        if self.text is not None:
            return "text"
        return "tools" if self.tools else "chat"


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


def tools_field(obj: dict[str, Any]) -> list[Any] | None:
    """A row's `tools` (tool definitions passed to the chat template, as mlx-lm does); CSV
    cells hold the list as JSON text."""
    tools = obj.get("tools")
    if isinstance(tools, str):
        with contextlib.suppress(json.JSONDecodeError):  # then refused below, as a string
            tools = json.loads(tools)
    if tools is not None and not isinstance(tools, list):
        raise ValueError("field 'tools' must be a list of tool definitions (JSON schemas)")
    return tools or None


def rename_fields(obj: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """`obj` with source columns renamed to standard fields (`columns`: standard → source)."""
    if not columns:
        return obj
    renamed = {key: value for key, value in obj.items() if key not in columns.values()}
    for standard, source in columns.items():
        if source in obj:
            renamed[standard] = obj[source]
    return renamed
