"""Preparing a run's data (data/prepare.py): split, dedup, length policy, the preparation
summary and the prepared folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import chat, write_lines

from lorascope.config import DataConfig
from lorascope.data.prepare import prepare_data, prepare_splits, split_records
from lorascope.data.records import UNSPLIT, Record
from lorascope.data.rules import build_validation_frame, token_counts
from lorascope.data.sources import dataset_hash, load_splits


def records_of(rows: list[dict[str, Any]], file: str = "src.jsonl") -> list[Record]:
    return [Record(file, line, row["messages"]) for line, row in enumerate(rows, start=1)]


def test_split_is_seeded_sized_by_fraction_and_keeps_source_order() -> None:
    records = records_of([chat(f"q{i}", "a") for i in range(100)])
    first = split_records(records, 0.1, 0.2, seed=3)
    assert {k: len(v) for k, v in first.items()} == {"train": 70, "valid": 10, "test": 20}
    assert split_records(records, 0.1, 0.2, seed=3) == first
    assert split_records(records, 0.1, 0.2, seed=4)["valid"] != first["valid"]
    for part in first.values():
        assert [r.line for r in part] == sorted(r.line for r in part)
    assert sorted(r.line for part in first.values() for r in part) == list(range(1, 101))


def test_duplicates_of_eval_rows_are_dropped_from_train_and_counted() -> None:
    source = {
        "train": records_of([chat("q1", "a"), chat("held", "out"), chat("q1", "a"),
                             chat("q2", "b")], "train.jsonl"),
        "valid": records_of([chat("HELD", "out")], "valid.jsonl"),
    }
    splits, summary = prepare_splits(DataConfig(), source, count_tokens=len)
    assert [r.line for r in splits["train"]] == [1, 4]
    assert [r.line for r in splits["valid"]] == [1]
    train = next(row for row in summary if row["split"] == "train")
    assert (train["rows_in"], train["exact_duplicate"], train["rows_out"]) == (4, 2, 2)
    assert {(e["line"], e["detail"]) for e in train["examples"]} == {
        (2, "same text as valid.jsonl:1"), (3, "same text as train.jsonl:1")
    }


def test_unsplit_source_is_deduplicated_then_split_and_long_rows_dropped(
    tokenizer: Any
) -> None:
    rows = [chat(f"What is {i} + {i}?", f"It is {2 * i}.") for i in range(40)]
    rows[5] = chat("Tell me a story.", "Once upon a time " * 30)
    rows.append(rows[0])
    data = DataConfig(over_length="drop", max_seq_length=60, valid_fraction=0.25,
                      test_fraction=0.0)
    splits, summary = prepare_splits(
        data, {UNSPLIT: records_of(rows)}, lambda rs: token_counts(tokenizer, rs)
    )
    by_split = {row["split"]: row for row in summary}
    assert list(by_split) == ["all", "train", "valid", "test"]
    assert (by_split["all"]["rows_in"], by_split["all"]["exact_duplicate"]) == (41, 1)
    assert by_split["all"]["rows_out"] == 40
    assert by_split["train"]["rows_in"] + by_split["valid"]["rows_in"] == 40
    too_long = [e for row in summary for e in row["examples"] if e["reason"] == "too_long"]
    assert [e["line"] for e in too_long] == [6]
    assert sum(row["too_long"] for row in summary) == 1
    assert 6 not in [r.line for part in splits.values() for r in part]
    assert "test" not in splits  # test_fraction 0: no empty test.jsonl


def test_prepared_folder_is_mlx_lm_messages_with_origins_and_a_stable_hash(
    tmp_path: Path, tiny_mistral_dir: Path
) -> None:
    source = tmp_path / "alpaca.jsonl"
    write_lines(source, [{"instruction": f"Add {i} and {i}.", "output": str(2 * i)}
                         for i in range(30)])
    summary = prepare_data(DataConfig(), source, tmp_path / "a", tiny_mistral_dir, None)
    prepare_data(DataConfig(), source, tmp_path / "b", tiny_mistral_dir, None)
    assert dataset_hash(tmp_path / "a") == dataset_hash(tmp_path / "b")
    first = json.loads((tmp_path / "a" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"messages", "lorascope_origin"}
    assert first["messages"][0]["role"] == "user"
    splits = load_splits(tmp_path / "a")
    assert {r.file for part in splits.values() for r in part} == {str(source)}
    assert sorted(r.line for part in splits.values() for r in part) == list(range(1, 31))
    assert json.loads((tmp_path / "a" / "preparation.json").read_text()) == summary


def test_a_given_test_split_is_kept_when_valid_is_carved_from_train() -> None:
    source = {
        UNSPLIT: records_of([chat(f"train question {i}", "a") for i in range(20)], "train.jsonl"),
        "test": records_of([chat(f"test question {i}", "b") for i in range(3)], "test.jsonl"),
    }
    splits, summary = prepare_splits(DataConfig(valid_fraction=0.25), source, count_tokens=len)
    assert {split: len(records) for split, records in splits.items()} == {
        "train": 15, "valid": 5, "test": 3
    }
    assert [(row["split"], row["rows_out"]) for row in summary] == [
        ("all", 20), ("train", 15), ("valid", 5), ("test", 3)
    ]


def test_a_lone_surrogate_survives_preparation_and_is_flagged_at_its_source_line(
    tmp_path: Path, tiny_mistral_dir: Path, tokenizer: Any
) -> None:
    lines = [json.dumps(chat(f"question {i}", "answer")) for i in range(20)]
    lines[4] = json.dumps(chat("bad", "x")).replace("bad", "bad \\ud800 escape")
    source = tmp_path / "chats.jsonl"
    source.write_text("\n".join(lines) + "\n")
    prepare_data(DataConfig(valid_fraction=0.5, test_fraction=0.0), source, tmp_path / "data",
                 tiny_mistral_dir, None)
    frame = build_validation_frame(load_splits(tmp_path / "data"), tokenizer)
    assert frame.loc[~frame["valid_utf8"], "line"].tolist() == [5]


def test_over_length_truncate_keeps_long_rows_and_counts_them(tokenizer: Any) -> None:
    from lorascope.data.prepare import preparation_markdown

    rows = [chat(f"What is {i} + {i}?", f"It is {2 * i}.") for i in range(10)]
    rows[3] = chat("Tell me a story.", "Once upon a time " * 30)
    source = {"train": records_of(rows[:8]), "valid": records_of(rows[8:])}
    data = DataConfig(over_length="truncate", max_seq_length=60)
    splits, summary = prepare_splits(data, source, lambda rs: token_counts(tokenizer, rs))
    train = next(row for row in summary if row["split"] == "train")
    assert (train["truncated"], train["too_long"], train["rows_out"]) == (1, 0, 8)
    assert len(splits["train"]) == 8
    ((line, reason),) = [(e["line"], e["reason"]) for e in train["examples"]]
    assert (line, reason) == (4, "truncated")
    assert "| truncated |" in preparation_markdown(summary)
    assert "`src.jsonl:4` truncated" in preparation_markdown(summary)
