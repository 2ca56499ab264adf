"""mlx-lm's four data formats train to the same token ids and loss offsets as in mlx-lm,
and prepared files keep them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import chat, write_lines

from lorascope.config import DataConfig
from lorascope.data.prepare import prepare_data
from lorascope.data.rules import token_counts
from lorascope.data.sources import load_jsonl, load_splits
from lorascope.models.chat import conversation_tokens

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
