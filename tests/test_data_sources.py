"""Reading instruction data (data/records.py, data/sources.py): formats, files, folders,
saved Hub datasets, and malformed input as one-line errors naming file and line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import chat, write_lines

from lorascope.data.records import ORIGIN_KEY, UNSPLIT, DataError
from lorascope.data.sources import dataset_hash, load_jsonl, load_splits, read_file, read_source


def test_messages_pass_through_keeping_system_and_tool_turns(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather"}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]
    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", [{"messages": messages}]))
    assert (record.file, record.line, record.messages) == (str(tmp_path / "a.jsonl"), 1, messages)


def test_prompt_completion_becomes_user_then_assistant(tmp_path: Path) -> None:
    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", [{"prompt": "Q", "completion": "A"}]))
    assert record.messages == [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]


def test_text_becomes_a_single_assistant_turn(tmp_path: Path) -> None:
    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", [{"text": "Once upon a time"}]))
    assert record.messages == [{"role": "assistant", "content": "Once upon a time"}]


def test_alpaca_joins_instruction_and_input_into_the_user_turn(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Translate.", "input": "Hallo", "output": "Hello"},
        {"instruction": "Say hi.", "input": "", "output": "Hi"},
    ]
    with_input, without_input = load_jsonl(write_lines(tmp_path / "a.jsonl", rows))
    assert with_input.messages == [
        {"role": "user", "content": "Translate.\n\nHallo"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert without_input.messages[0] == {"role": "user", "content": "Say hi."}
    assert without_input.line == 2


GOOD_LINE = b'{"prompt": "Q", "completion": "A"}\n'


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (GOOD_LINE + b'{"prompt": "Q", "completion": \n', 2, "broken JSON"),
        (GOOD_LINE * 2 + b'["prompt", "completion"]\n', 3, "expected a JSON object, got list"),
        (GOOD_LINE + b'{"question": "Q", "answer": "A"}\n', 2, "no known format"),
        (b'{"messages": "hello"}\n', 1, "field 'messages' must be"),
        (GOOD_LINE + b'{"prompt": 1, "completion": "A"}\n', 2, "field 'prompt' must be a string"),
        (GOOD_LINE + b"\n" + GOOD_LINE, 2, "blank line"),
        (GOOD_LINE + b'{"text": "caf\xe9"}\n', 2, "not valid UTF-8"),
        (b"", 1, "empty file"),
    ],
    ids=["json", "not-object", "no-format", "bad-messages", "bad-field", "blank", "utf8", "empty"],
)
def test_malformed_line_raises_one_line_error_naming_file_and_line(
    tmp_path: Path, content: bytes, line: int, message: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_jsonl(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert (caught.value.file, caught.value.line) == (str(path), line)


def test_a_folder_given_as_a_file_raises_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}:1: is a folder"):
        load_jsonl(tmp_path)


def test_load_splits_reads_train_valid_and_optional_test(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.jsonl", [chat("a", "b")] * 3)
    write_lines(tmp_path / "valid.jsonl", [chat("c", "d")])
    assert {k: len(v) for k, v in load_splits(tmp_path).items()} == {"train": 3, "valid": 1}
    write_lines(tmp_path / "test.jsonl", [chat("e", "f")] * 2)
    assert len(load_splits(tmp_path)["test"]) == 2


def test_load_splits_without_valid_names_the_missing_file(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.jsonl", [chat("a", "b")])
    with pytest.raises(FileNotFoundError, match="valid.jsonl"):
        load_splits(tmp_path)


def test_dataset_hash_follows_split_contents_only(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.jsonl", [chat("a", "b")])
    write_lines(tmp_path / "valid.jsonl", [chat("c", "d")])
    before = dataset_hash(tmp_path)
    (tmp_path / "notes.txt").write_text("not data")
    assert dataset_hash(tmp_path) == before
    write_lines(tmp_path / "valid.jsonl", [chat("c", "e")])
    assert dataset_hash(tmp_path) != before
    assert re.fullmatch(r"[0-9a-f]{16}", before)



def test_dataset_hash_does_not_depend_on_where_the_rows_came_from(tmp_path: Path) -> None:
    # prepared rows carry their source file's absolute path, which moves with LORASCOPE_HOME
    for home in ("a", "b"):
        (tmp_path / home).mkdir()
        rows = [{**chat("q", "r"), ORIGIN_KEY: {"file": f"/{home}/train.jsonl", "line": 1}}]
        write_lines(tmp_path / home / "train.jsonl", rows)
        write_lines(tmp_path / home / "valid.jsonl", [chat("c", "d")])
    assert dataset_hash(tmp_path / "a") == dataset_hash(tmp_path / "b")
    write_lines(tmp_path / "b" / "train.jsonl", [chat("q", "s")])
    assert dataset_hash(tmp_path / "a") != dataset_hash(tmp_path / "b")

# ---------------------------------------------------------------- more sources and formats

QA_ROWS = [{"question": f"Q{i}?", "answer": f"A{i}.", "topic": "t"} for i in range(3)]
QA_COLUMNS = {"prompt": "question", "completion": "answer", "label": "topic"}


def test_sharegpt_conversations_map_roles_and_keep_a_top_level_system(tmp_path: Path) -> None:
    row = {
        "system": "Be kind.",
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
            {"from": "narrator", "value": "?"},
        ],
    }
    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", [row]))
    assert record.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "narrator", "content": "?"},  # kept, so the roles rule names this row
    ]


def test_either_turn_shape_is_accepted_in_either_field(tmp_path: Path) -> None:
    rows = [{"conversations": chat("q", "a")["messages"]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]
    first, second = load_jsonl(write_lines(tmp_path / "a.jsonl", rows))
    assert first.messages == second.messages == chat("q", "a")["messages"]


def test_column_mapping_renames_odd_columns_and_reads_the_label(tmp_path: Path) -> None:
    write_lines(tmp_path / "qa.jsonl", QA_ROWS)
    records = read_file(tmp_path / "qa.jsonl", QA_COLUMNS)
    assert records[1].messages == [
        {"role": "user", "content": "Q1?"},
        {"role": "assistant", "content": "A1."},
    ]
    assert records[1].label == "t"


def test_parquet_csv_and_json_array_give_the_same_records(tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(QA_ROWS), tmp_path / "qa.parquet")
    (tmp_path / "qa.json").write_text(json.dumps(QA_ROWS))
    pd.DataFrame(QA_ROWS).to_csv(tmp_path / "qa.csv", index=False)
    read = {
        ext: read_file(tmp_path / f"qa.{ext}", QA_COLUMNS) for ext in ("parquet", "json", "csv")
    }
    messages = {ext: [r.messages for r in records] for ext, records in read.items()}
    assert messages["parquet"] == messages["json"] == messages["csv"]
    assert len(messages["csv"]) == 3
    assert [r.line for r in read["json"]] == [1, 2, 3]
    assert [r.line for r in read["csv"]] == [2, 3, 4]  # line 1 is the header


def test_csv_cells_may_hold_messages_as_json(tmp_path: Path) -> None:
    pd.DataFrame([{"messages": json.dumps(chat("a", "b")["messages"])}]).to_csv(
        tmp_path / "chat.csv", index=False
    )
    (record,) = read_file(tmp_path / "chat.csv")
    assert record.messages == chat("a", "b")["messages"]


def test_saved_hf_dataset_dict_maps_validation_to_valid(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([chat(f"q{i}", "a") for i in range(4)]),
        "validation": datasets.Dataset.from_list([chat("v", "a")]),
    }).save_to_disk(str(tmp_path / "saved"))
    splits = read_source(tmp_path / "saved")
    assert {split: len(records) for split, records in splits.items()} == {"train": 4, "valid": 1}
    assert splits["valid"][0].file == f"{tmp_path / 'saved'}[validation]"
    assert splits["train"][3].messages == chat("q3", "a")["messages"]


def test_saved_hf_dataset_without_splits_comes_back_unsplit(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(QA_ROWS).save_to_disk(str(tmp_path / "saved"))
    splits = read_source(tmp_path / "saved", QA_COLUMNS)
    assert list(splits) == [UNSPLIT] and len(splits[UNSPLIT]) == 3


def test_a_single_file_source_comes_back_unsplit(tmp_path: Path) -> None:
    write_lines(tmp_path / "all.jsonl", [chat("a", "b"), chat("c", "d")])
    assert [len(v) for v in read_source(tmp_path / "all.jsonl").values()] == [2]
    assert list(read_source(tmp_path / "all.jsonl")) == [UNSPLIT]


def malformed_sources(tmp_path: Path) -> dict[str, tuple[Path, int | None, str]]:
    """name -> (path to read, line the error must name or None, words it must contain)."""
    cases: dict[str, tuple[Path, int | None, str]] = {}
    good = json.dumps(chat("q", "a")) + "\n"
    path = tmp_path / "broken.jsonl"
    path.write_text(good * 6 + '{"messages": [\n' + good)
    cases["broken-json"] = (path, 7, "broken JSON")
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(good.encode("utf-16"))
    cases["utf-16"] = (path, 1, "looks like UTF-16")
    path = tmp_path / "latin1.csv"
    path.write_bytes("prompt,completion\nq,a\ncafé,a\n".encode("latin-1"))
    cases["latin-1-csv"] = (path, 3, "not valid UTF-8")
    path = tmp_path / "huge.jsonl"
    path.write_text(good + json.dumps({"text": "x" * 50 * 2**20}) + "\n")
    cases["50mb-line"] = (path, 2, "line longer than 16 MB")
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    cases["empty"] = (path, 1, "empty file")
    path = tmp_path / "empty.parquet"
    import pyarrow
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.table({"text": pyarrow.array([], pyarrow.string())}), path)
    cases["empty-parquet"] = (path, 1, "empty file")
    path = tmp_path / "folder" / "train.jsonl"
    path.mkdir(parents=True)
    cases["folder-as-file"] = (path, None, "is a folder")
    path = tmp_path / "mixed.jsonl"
    path.write_text(good * 2 + json.dumps({"instruction": "i", "output": "o"}) + "\n")
    cases["mixed-formats"] = (path, 3, "format 'alpaca' differs from the first row's 'messages'")
    path = tmp_path / "not.parquet"
    path.write_text("PAR? no")
    cases["corrupt-parquet"] = (path, None, "not a readable Parquet file")
    path = tmp_path / "object.json"
    path.write_text(json.dumps(chat("q", "a")))
    cases["json-object"] = (path, 1, "expected a JSON array")
    return cases


MALFORMED = ["broken-json", "utf-16", "latin-1-csv", "50mb-line", "empty", "empty-parquet",
             "folder-as-file", "mixed-formats", "corrupt-parquet", "json-object"]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_sources_raise_one_line_errors_naming_file_and_line(
    tmp_path: Path, case: str
) -> None:
    path, line, words = malformed_sources(tmp_path)[case]
    with pytest.raises(DataError) as caught:
        read_file(path)
    where = str(path) if line is None else f"{path}:{line}"
    assert str(caught.value).startswith(f"{where}: "), str(caught.value)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    assert caught.value.__cause__ is None  # no library traceback chained behind it


def test_folder_with_two_train_files_asks_to_keep_one(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.jsonl", [chat("a", "b")])
    write_lines(tmp_path / "train.json", [chat("a", "b")])
    with pytest.raises(DataError, match="train.jsonl and train.json both hold the train split"):
        read_source(tmp_path)


def test_hub_source_offline_fails_in_one_line_from_the_cli(
    tmp_path: Path, tiny_config: Any, session_home: Path, tiny_mistral_dir: Path
) -> None:
    import os
    import subprocess

    config = tiny_config()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LORASCOPE_HOME": str(session_home)}
    done = subprocess.run(
        [sys.executable, "-m", "lorascope.cli", "validate", str(config),
         "--data", "hf:nobody/none"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 4  # bad data
    assert done.stderr.strip().splitlines()[-1].startswith(
        "lorascope: hf:nobody/none: cannot load 'nobody/none' from the Hugging Face Hub"
    )
    assert "Traceback" not in done.stderr
