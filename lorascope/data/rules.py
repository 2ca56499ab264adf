"""Facts per row that the validation suite checks (roles, empty turns, UTF-8, token counts,
duplicates, leaks), gathered into one frame for Great Expectations.

Rules follow the row's format: a `text` row has no roles (its role facts are null and the
suite skips them), its text must not be empty, and its tokens are the raw text's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lorascope.data.records import (
    ALTERNATING_ROLES,
    FRAME_COLUMNS,
    ROLE_LETTERS,
    ROLES,
    TOKENIZE_CHUNK,
    USER,
    DataError,
    Message,
    Record,
)


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


def has_empty_turn(messages: list[Message]) -> bool:
    """A user, system or tool turn with no text."""
    return any(
        m.get("role") in ("user", "system", "tool") and not str(m.get("content") or "").strip()
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

    from lorascope.models.chat import ensure_chat_template

    return ensure_chat_template(AutoTokenizer.from_pretrained(str(model_path)), chat_template)


def _render_one(tokenizer: Any, record: Record) -> str:
    try:
        return tokenizer.apply_chat_template(record.messages, tools=record.tools, tokenize=False)
    except Exception as error:  # jinja and tokenizer errors vary
        raise DataError(record.file, record.line,
                        f"the chat template cannot format this record: {error}") from None


def _rendered(tokenizer: Any, records: list[Record]) -> list[str]:
    """Chat rows rendered by the template: in one batch, rows with tools one by one (their
    tool definitions differ per row)."""
    plain = [r for r in records if not r.tools]
    try:
        batch = iter(tokenizer.apply_chat_template([r.messages for r in plain], tokenize=False)
                     if plain else [])
    except Exception:  # find the record that caused it
        for record in plain:
            _render_one(tokenizer, record)
        raise
    return [_render_one(tokenizer, r) if r.tools else next(batch) for r in records]


def _utf8(texts: list[str]) -> list[str]:
    # Lone surrogates crash the Rust tokenizer; such rows fail the valid_utf8 rule anyway.
    return [t if is_valid_utf8(t) else t.encode("utf-8", "replace").decode() for t in texts]


def token_counts(
    tokenizer: Any, records: list[Record], progress: Callable[[int, int], None] | None = None
) -> list[int]:
    """Tokens per record as training makes them: chat rows with the chat template applied
    (`chat.conversation_tokens`), `text` rows raw with BOS and EOS (`chat.text_tokens`).

    Rendered and encoded in batches: the same ids as one `apply_chat_template` call per row
    (which renders, then encodes without adding special tokens), about 3× faster.
    """
    from lorascope.models.chat import hf_tokenizer

    inner = hf_tokenizer(tokenizer)
    encode = inner.backend_tokenizer.encode_batch_fast
    counts: list[int] = []
    for start in range(0, len(records), TOKENIZE_CHUNK):
        chunk = records[start : start + TOKENIZE_CHUNK]
        chats = [r for r in chunk if r.text is None]
        chat_ids = iter(encode(_utf8(_rendered(inner, chats)), add_special_tokens=False)
                        if chats else [])
        texts = [r.text for r in chunk if r.text is not None]
        text_ids = iter(encode(_utf8(texts), add_special_tokens=True) if texts else [])
        for record in chunk:
            if record.text is None:
                counts.append(len(next(chat_ids).ids))
            else:  # an EOS is appended unless the text ends with one
                ids = next(text_ids).ids
                counts.append(len(ids) + (not ids or ids[-1] != inner.eos_token_id))
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
            is_text = record.text is not None
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
                    "format": record.format,
                    "n_messages": 0 if is_text else len(record.messages),
                    "roles_valid": None if is_text else all(
                        m.get("role") in ROLES for m in record.messages),
                    "roles_alternate": None if is_text else roles_alternate(record.messages),
                    "empty_assistant": (not record.text.strip()) if is_text
                    else has_empty_assistant(record.messages),
                    "empty_turn": False if is_text else has_empty_turn(record.messages),
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
