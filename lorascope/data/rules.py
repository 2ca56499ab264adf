"""Facts per row that the validation suite checks (roles, empty turns, UTF-8, token counts,
duplicates, leaks), gathered into one frame for Great Expectations."""

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
    from lorascope.models.chat import hf_tokenizer

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
