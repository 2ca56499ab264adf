"""`lorascope export`: a tiny run trained and evaluated by the real pipeline flow (tiny-mistral,
built-in data, DuckDB), exported by a real `lorascope export` process. The folder loads in
mlx-lm without adapters and generates the greedy tokens of base + adapters; it carries the
chat template the evaluation used; its model card's numbers are the warehouse's."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.export import export_run
from lorascope.models.chat import hf_tokenizer
from lorascope.models.loader import load_model
from lorascope.paths import RunPaths, warehouse_path
from lorascope.runs import open_run

pytestmark = pytest.mark.slow

PROMPTS = ["What is the boiling point of water?", "Name a planet.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def run(prefect_harness: Any, tmp_path_factory: pytest.TempPathFactory,
        tiny_mistral_dir: Path) -> dict[str, Any]:
    """A trained and evaluated tiny run, exported with `lorascope export RUN_ID`."""
    from lorascope.flows.pipeline import pipeline

    home = home_with_tiny_mistral(tmp_path_factory.mktemp("export_home"), tiny_mistral_dir)
    settings = copy.deepcopy(TINY_RUN)
    settings["train"]["iters"] = 4
    settings["eval"] = {"prompts": ["builtin:sciq-format"], "max_tokens": 4, "batch_size": 24,
                        "capability_tasks": ["arc_easy"], "capability_limit": 6,
                        "test_limit": 8, "attention_prompts": 0, "perplexity_limit": 0}
    config = tmp_path_factory.mktemp("export_config") / "tiny.yaml"
    config.write_text(yaml.safe_dump(settings))
    state = pipeline(str(config), home=str(home), return_state=True)
    assert state.is_completed(), state
    run_id = state.result()
    result = subprocess.run([sys.executable, "-m", "lorascope.cli", "export", run_id],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "LORASCOPE_HOME": str(home)})
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation_id,) = [row["evaluation_id"] for row in warehouse.select_rows(
        warehouse_path(home), "evaluations", run_id=run_id)]
    folder = RunPaths.of(run_id, home).root / "export"
    return {"home": home, "run_id": run_id, "evaluation_id": evaluation_id, "folder": folder,
            "card": (folder / "README.md").read_text()}


def greedy_tokens(model: Any, tokenizer: Any, prompt: list[int]) -> list[int]:
    from mlx_lm.generate import stream_generate

    return [r.token for r in stream_generate(model, tokenizer, prompt, max_tokens=8)]


def test_the_export_generates_the_greedy_tokens_of_base_plus_adapters_without_adapters(
    run: dict[str, Any],
) -> None:
    from mlx_lm import load

    context = open_run(run["run_id"], run["home"])
    assert not (run["folder"] / "adapters.safetensors").exists()
    fused, fused_tokenizer = load(str(run["folder"]))
    base, base_tokenizer = load(str(context.model_path), adapter_path=str(context.paths.adapters))
    for text in PROMPTS:
        prompt = fused_tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                     add_generation_prompt=True, return_dict=False)
        tokens = greedy_tokens(fused, fused_tokenizer, prompt)
        assert len(tokens) == 8
        assert tokens == greedy_tokens(base, base_tokenizer, prompt), text


def test_the_export_computes_base_plus_adapters_not_the_base(run: dict[str, Any]) -> None:
    """A few training steps barely move tiny-mistral's greedy tokens, so the logits say that
    the adapters are in the export (measured: 3e-7 from base + adapters, 0.03 from the base)."""
    import mlx.core as mx
    from mlx_lm import load

    context = open_run(run["run_id"], run["home"])
    fused, tokenizer = load(str(run["folder"]))
    with_adapters, _ = load(str(context.model_path), adapter_path=str(context.paths.adapters))
    base, _ = load(str(context.model_path))
    prompt = mx.array([tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True, return_dict=False)])
    logits = fused(prompt)
    assert mx.abs(logits - with_adapters(prompt)).max().item() < 1e-5
    assert mx.abs(logits - base(prompt)).max().item() > 1e-3


def test_the_export_carries_the_chat_template_the_evaluation_used(run: dict[str, Any]) -> None:
    from mlx_lm import load

    context = open_run(run["run_id"], run["home"])
    _, evaluated = load_model(context.model_path, context.config.model)
    used = hf_tokenizer(evaluated).chat_template
    assert hf_tokenizer(load(str(run["folder"]))[1]).chat_template == used
    saved = json.loads((run["folder"] / "tokenizer_config.json").read_text())
    assert saved["chat_template"] == used


def test_the_model_card_has_hugging_face_front_matter(run: dict[str, Any]) -> None:
    _, header, _ = run["card"].split("---\n", 2)
    meta = yaml.safe_load(header)
    assert (meta["base_model"], meta["library_name"], meta["license"]) == (
        "tiny-mistral", "mlx", "apache-2.0")
    assert {"mlx", "lora"} <= set(meta["tags"])


def card_rows(card: str, columns: list[str]) -> set[tuple[str, ...]]:
    """The rows of the card's table whose header is `columns`, as cell texts."""
    lines = card.splitlines()
    start = lines.index("| " + " | ".join(columns) + " |") + 2
    rows = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.add(tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")))
    return rows


def cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("view", ["goal_improvement", "test_loss", "capability_preservation"])
def test_the_model_card_numbers_are_the_warehouse_ones(run: dict[str, Any], view: str) -> None:
    columns, rows = warehouse.query(
        warehouse_path(run["home"]),
        f"select * exclude (evaluation_id, run_id) from {view} where evaluation_id = ?",
        [run["evaluation_id"]])
    assert rows
    assert {tuple(cell(v) for v in row) for row in rows} <= card_rows(run["card"], columns)


def test_the_model_card_records_data_seed_config_and_code_version(run: dict[str, Any]) -> None:
    ((data_hash, seed, code_version),) = warehouse.query(
        warehouse_path(run["home"]), "select data_hash, seed, code_version from runs "
        "where run_id = ?", [run["run_id"]])[1]
    card = run["card"]
    assert f"| data hash | {data_hash} |" in card
    assert f"| seed | {seed} |" in card
    assert f"| trained with | {code_version} |" in card
    assert RunPaths.of(run["run_id"], run["home"]).config.read_text().strip() in card
    assert "cc-by-nc-3.0" in card  # the built-in data's licence (SciQ)


def test_the_export_is_recorded_in_the_run_folder(run: dict[str, Any]) -> None:
    log = RunPaths.of(run["run_id"], run["home"]).root / "exports.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"path": str(run["folder"]), "evaluation_id": run["evaluation_id"],
            "quantize_bits": None} in [
        {key: r[key] for key in ("path", "evaluation_id", "quantize_bits")} for r in records]


def test_a_folder_that_is_not_an_earlier_export_is_never_overwritten(
    run: dict[str, Any], tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an earlier export"):
        export_run(run["run_id"], run["home"], tmp_path, log=lambda _: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_quantized_export_is_what_mlx_lm_convert_q_writes_and_loads_in_mlx_lm(
    run: dict[str, Any], tmp_path: Path,
) -> None:
    from mlx_lm import load
    from mlx_lm.generate import generate

    folder = export_run(run["run_id"], run["home"], tmp_path / "q8", quantize_bits=8,
                        quantize_group_size=32, log=lambda _: None)
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 8, "mode": "affine"}
    model, tokenizer = load(str(folder))
    assert generate(model, tokenizer, "Name a planet.", max_tokens=3)
    assert "8-bit, group size 32" in (folder / "README.md").read_text()
