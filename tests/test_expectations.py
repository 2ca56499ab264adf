"""The instruction-data suite, run for real by Great Expectations on small files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from lorascope.config import DataConfig
from lorascope.data.builtin import prepare_builtin_dataset
from lorascope.data.rules import build_validation_frame
from lorascope.data.sources import load_splits
from lorascope.expectations.instruction_data import ValidationReport, validate_instruction_data
from lorascope.models.chat import ensure_chat_template

WAREHOUSE_COLUMNS = [
    "expectation",
    "column_name",
    "rule",
    "success",
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "mostly",
    "examples",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_mistral_dir: Path) -> Any:
    # mlx-lm's loader wraps transformers.AutoTokenizer exactly as training does.
    return ensure_chat_template(load_tokenizer(tiny_mistral_dir))


def chat(user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def qa(start: int, count: int) -> list[dict[str, Any]]:
    return [chat(f"What is {i} + {i}?", f"Answer: {2 * i}") for i in range(start, start + count)]


def write_dataset(folder: Path, train: list[Any], valid: list[Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("valid", valid)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def validate(folder: Path, tokenizer: Any, batch_size: int = 4, **config: Any) -> ValidationReport:
    frame = build_validation_frame(load_splits(folder), tokenizer)
    return validate_instruction_data(frame, DataConfig(**config), batch_size)


def failed(report: ValidationReport, column: str = "") -> list[Any]:
    return [o for o in report.results if not o.success and o.column == column]


def test_clean_dataset_passes(tmp_path: Path, tokenizer: Any) -> None:
    report = validate(write_dataset(tmp_path, qa(0, 10), qa(100, 4)), tokenizer)
    assert report.success, report.to_markdown()
    assert "❌" not in report.to_markdown()


def test_empty_assistant_at_line_7_fails_naming_file_line_and_rule(
    tmp_path: Path, tokenizer: Any
) -> None:
    train = qa(0, 10)
    train[6] = chat("What is nothing?", "")
    folder = write_dataset(tmp_path, train, qa(100, 4))
    report = validate(folder, tokenizer)

    assert not report.success
    (outcome,) = failed(report, "empty_assistant")
    assert outcome.unexpected_count == 1
    (example,) = outcome.examples
    assert example == {
        "file": str(folder / "train.jsonl"),
        "line": 7,
        "field": "empty_assistant",
        "rule": "no assistant turn is empty",
        "value": True,
    }
    assert f"`{folder / 'train.jsonl'}:7` empty_assistant — no assistant turn is empty" in (
        report.to_markdown()
    )


def test_too_few_rows_for_the_batch_size_fails_naming_the_split(
    tmp_path: Path, tokenizer: Any
) -> None:
    report = validate(write_dataset(tmp_path, qa(0, 10), qa(100, 3)), tokenizer, batch_size=4)
    assert not report.success
    (outcome,) = failed(report)
    assert outcome.rule == "valid has at least 4 rows (train.batch_size)"
    assert outcome.element_count == 3
    assert "valid has at least 4 rows" in report.to_markdown()


def test_row_longer_than_max_seq_length_fails(tmp_path: Path, tokenizer: Any) -> None:
    train = qa(0, 10)
    train[2] = chat("Tell me everything.", "and so on " * 20)
    report = validate(write_dataset(tmp_path, train, qa(100, 4)), tokenizer, max_seq_length=40)
    (outcome,) = failed(report, "token_count")
    assert [e["line"] for e in outcome.examples] == [3]
    assert outcome.examples[0]["value"] > 40


def test_duplicates_fail_only_beyond_the_allowed_fraction(tmp_path: Path, tokenizer: Any) -> None:
    folder = write_dataset(tmp_path, qa(0, 9) + qa(0, 1), qa(100, 4))
    strict = validate(folder, tokenizer, max_duplicate_fraction=0.0)
    (outcome,) = failed(strict, "is_duplicate")
    assert [e["line"] for e in outcome.examples] == [10]
    assert validate(folder, tokenizer, max_duplicate_fraction=0.1).success


def test_train_prompt_also_in_valid_fails_as_leakage(tmp_path: Path, tokenizer: Any) -> None:
    report = validate(write_dataset(tmp_path, qa(0, 10), qa(5, 4)), tokenizer)
    (outcome,) = failed(report, "leaks_into_eval")
    assert [e["line"] for e in outcome.examples] == [6, 7, 8, 9]


def test_warehouse_rows_have_the_table_columns_and_json_examples(
    tmp_path: Path, tokenizer: Any
) -> None:
    train = qa(0, 10)
    train[6] = chat("What is nothing?", "")
    report = validate(write_dataset(tmp_path, train, qa(100, 4)), tokenizer)
    rows = report.rows()
    assert len(rows) == len(report.results)
    assert all(list(row) == WAREHOUSE_COLUMNS for row in rows)
    (bad,) = [row for row in rows if not row["success"]]
    assert json.loads(bad["examples"])[0]["line"] == 7


def test_builtin_dataset_passes_the_default_suite(session_home: Path, tokenizer: Any) -> None:
    report = validate(prepare_builtin_dataset("sciq-format", session_home), tokenizer)
    assert report.success, report.to_markdown()


def test_lone_surrogate_fails_valid_utf8_naming_the_line(tmp_path: Path, tokenizer: Any) -> None:
    folder = write_dataset(tmp_path, qa(0, 10), qa(100, 4))
    lines = (folder / "train.jsonl").read_text().splitlines()
    lines[3] = '{"messages": [{"role": "user", "content": "bad \\ud800 escape"}, ' \
        '{"role": "assistant", "content": "ok"}]}'
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    (outcome,) = failed(validate(folder, tokenizer), "valid_utf8")
    assert [(e["line"], e["value"]) for e in outcome.examples] == [(4, False)]


def labelled(rows: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    return [{**row, "label": label} for row, label in zip(rows, labels, strict=True)]


def test_label_balance_fails_when_one_label_dominates(tmp_path: Path, tokenizer: Any) -> None:
    train = labelled(qa(0, 10), ["math"] * 8 + ["poetry"] * 2)
    valid = labelled(qa(100, 4), ["math", "poetry"] * 2)
    folder = write_dataset(tmp_path, train, valid)
    report = validate(folder, tokenizer, max_label_fraction=0.6)
    (outcome,) = failed(report, "label_share")
    assert outcome.unexpected_count == 8
    assert outcome.examples[0]["line"] == 1 and outcome.examples[0]["value"] == 0.8
    assert validate(folder, tokenizer, max_label_fraction=0.8).success
    assert validate(folder, tokenizer).success  # not configured: not checked


def test_label_balance_requires_labels(tmp_path: Path, tokenizer: Any) -> None:
    report = validate(write_dataset(tmp_path, qa(0, 10), qa(100, 4)), tokenizer,
                      max_label_fraction=0.5)
    (outcome,) = failed(report, "label")
    assert outcome.rule == "every row has a label (data.columns.label)"


def test_mostly_by_rule_loosens_one_rule_only(tmp_path: Path, tokenizer: Any) -> None:
    train = qa(0, 10)
    train[6] = chat("What is nothing?", "")
    train[2] = {"messages": train[2]["messages"][::-1]}  # assistant first: not alternating
    folder = write_dataset(tmp_path, train, qa(100, 4))
    report = validate(folder, tokenizer, mostly_by_rule={"empty_assistant": 0.9})
    assert not failed(report, "empty_assistant")
    (outcome,) = failed(report, "roles_alternate")
    assert outcome.mostly == 1.0 and [e["line"] for e in outcome.examples] == [3]


def test_text_rows_skip_the_role_rules_but_not_the_empty_text_rule(
    tmp_path: Path, tokenizer: Any
) -> None:
    train = [{"text": f"Passage {i} about rivers and number {i * 3}."} for i in range(6)]
    train[2] = {"text": "   "}
    folder = write_dataset(tmp_path, train, [{"text": "A held-out passage."}] * 4)
    report = validate(folder, tokenizer, max_duplicate_fraction=1.0)
    roles = [o for o in report.results if o.column in ("roles_valid", "roles_alternate")]
    assert [(o.success, o.element_count) for o in roles] == [(True, 0), (True, 0)]
    (empty,) = failed(report, "empty_assistant")
    assert [e["line"] for e in empty.examples] == [3]


def test_an_empty_user_turn_fails_the_empty_turn_rule(tmp_path: Path, tokenizer: Any) -> None:
    train = qa(0, 10)
    train[4] = chat("  ", "An answer to nothing.")
    report = validate(write_dataset(tmp_path, train, qa(100, 4)), tokenizer)
    (outcome,) = failed(report, "empty_turn")
    assert [e["line"] for e in outcome.examples] == [5]
    assert outcome.rule == "no user, system or tool turn is empty"


def test_over_length_truncate_lets_long_rows_pass(tmp_path: Path, tokenizer: Any) -> None:
    train = qa(0, 10)
    train[1] = chat("Tell me a story.", "Once upon a time " * 40)
    folder = write_dataset(tmp_path, train, qa(100, 4))
    assert failed(validate(folder, tokenizer, max_seq_length=64), "token_count")
    report = validate(folder, tokenizer, max_seq_length=64, over_length="truncate")
    assert report.success, report.to_markdown()
    checks = {o.expectation for o in report.results if o.column == "token_count"}
    assert checks == {"expect_column_values_to_not_be_null"}  # present, but no maximum
