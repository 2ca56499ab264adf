"""Facts per row (data/rules.py): the validation frame and token counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import chat, write_lines

from lorascope.data.records import FRAME_COLUMNS, DataError
from lorascope.data.rules import build_validation_frame, token_counts
from lorascope.data.sources import load_jsonl, load_splits
from lorascope.models.chat import conversation_tokens


def test_validation_frame_flags_each_problem_on_its_row(tmp_path: Path, tokenizer: Any) -> None:
    train = [
        chat("What is H2O?", "Water."),
        chat("What is H2O?", "Water."),
        chat("Held out?", "Yes."),
        chat("Empty?", "  "),
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "x"}]},
        {
            "messages": [
                {"role": "assistant", "content": "I start."},
                {"role": "user", "content": "Fine."},
                {"role": "assistant", "content": "Good."},
            ]
        },
    ]
    write_lines(tmp_path / "train.jsonl", train)
    write_lines(tmp_path / "valid.jsonl", [chat("held   OUT?", "Yes.")])
    frame = build_validation_frame(load_splits(tmp_path), tokenizer)

    assert list(frame.columns) == FRAME_COLUMNS
    assert list(frame["split"]) == ["train"] * 6 + ["valid"]
    assert list(frame["line"]) == [1, 2, 3, 4, 5, 6, 1]
    assert list(frame["is_duplicate"]) == [False, True, False, False, False, False, False]
    assert list(frame["leaks_into_eval"]) == [False, False, True, False, False, False, False]
    assert list(frame["empty_assistant"]) == [False, False, False, True, False, False, False]
    assert list(frame["roles_valid"]) == [True, True, True, True, False, True, True]
    assert list(frame["roles_alternate"]) == [True, True, True, True, False, False, True]
    assert frame["normalized_text"][6] == "held out? yes."
    ids, _ = conversation_tokens(tokenizer, train[0]["messages"])
    assert frame["token_count"][0] == len(ids)


def test_tool_calls_within_an_answer_still_alternate(tmp_path: Path, tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather"}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]
    write_lines(tmp_path / "train.jsonl", [{"messages": messages}])
    write_lines(tmp_path / "valid.jsonl", [chat("a", "b")])
    frame = build_validation_frame(load_splits(tmp_path), tokenizer)
    assert frame["roles_alternate"][0] and not frame["empty_assistant"][0]


def test_template_error_names_the_record(tmp_path: Path, tokenizer: Any) -> None:
    write_lines(tmp_path / "train.jsonl", [chat("a", "b")] * 3 + [
        {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]}
    ])
    with pytest.raises(DataError, match=r"train.jsonl:4: the chat template cannot format"):
        token_counts(tokenizer, load_jsonl(tmp_path / "train.jsonl"))


def test_batched_token_counts_equal_training_tokenization(tmp_path: Path, tokenizer: Any) -> None:
    rows = [chat(f"What is {i}?", "It is " + "very " * i + "big.") for i in range(5)]
    system = {"role": "system", "content": "Be brief."}
    rows.append({"messages": [system, *chat("x", "y")["messages"]]})
    records = load_jsonl(write_lines(tmp_path / "a.jsonl", rows))
    expected = [len(conversation_tokens(tokenizer, r.messages)[0]) for r in records]
    assert token_counts(tokenizer, records) == expected
