"""mlx-lm's own LoRA config and data, run by lorascope as they are: the key translation with
mlx-lm's defaults, errors that name file, line and key, loss parity with `mlx_lm lora`, and
mlx-lm's example config through the whole pipeline."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
import yaml
from conftest import home_with_tiny_mistral

from lorascope import mlx_lm_config, warehouse
from lorascope.config import ConfigError, load_config
from lorascope.data.sources import load_splits
from lorascope.models.chat import MISTRAL_INST_TEMPLATE
from lorascope.models.loader import load_model
from lorascope.paths import RunPaths, warehouse_path
from lorascope.training.trainer import build_optimizer, train_adapters

EXAMPLE = Path(__file__).parent / "data" / "mlx_lm_lora_config.yaml"
# The same example as mlx-lm versions with preference/RL training have it: training_mode: normal.
TRAINING_MODE_EXAMPLE = Path(__file__).parent / "data" / "mlx_lm_lora_config_training_mode.yaml"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lora_config.yaml"
    path.write_text(text)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def completions(start: int, count: int) -> list[dict[str, Any]]:
    return [{"prompt": f"What is {i} plus {i + 3}?", "completion": f"{i} plus {i + 3} is "
             f"{2 * i + 3}."} for i in range(start, start + count)]


def texts(start: int, count: int) -> list[dict[str, Any]]:
    return [{"text": f"Note {i}: the river number {i} flows {i * 7 % 13} miles to the sea."}
            for i in range(start, start + count)]


# ---------------------------------------------------------------- translation


def test_the_key_list_and_defaults_are_those_of_the_installed_mlx_lm() -> None:
    from mlx_lm import lora

    ours = dict(mlx_lm_config.CONFIG_DEFAULTS)
    theirs = dict(lora.CONFIG_DEFAULTS)
    assert theirs.pop("optimizer_config").keys() >= {"adam", "adamw"}
    ours.pop("optimizer_config")
    assert ours == theirs
    parser_keys = {action.dest for action in lora.build_parser()._actions if action.dest != "help"}
    assert parser_keys <= set(mlx_lm_config.MLX_LM_KEYS)


def test_mlx_lm_example_config_gets_mlx_lm_semantics() -> None:
    config = load_config(EXAMPLE)
    assert config.model.source == "mlx-community/Llama-3.2-1B-Instruct-bf16"
    assert config.data.source == "hf:mlx-community/WikiSQL"  # not a local folder here
    assert (config.lora.num_layers, config.lora.rank, config.lora.scale, config.lora.dropout) == (
        16, 8, 20.0, 0.0)
    assert config.lora.effective_scale == 20.0
    assert config.lora.target_modules == ["self_attn.q_proj", "self_attn.v_proj"]
    train = config.train
    assert (train.learning_rate, train.lr_schedule, train.warmup_steps) == (1e-5, "constant", 0)
    assert (train.optimizer, train.weight_decay) == ("adamw", 0.01)  # mlx's AdamW default
    assert (train.mask_prompt, train.batch_size, train.iters, train.val_batches) == (
        False, 4, 1000, 25)
    assert (train.steps_per_report, train.steps_per_eval, train.save_every) == (10, 200, 100)
    assert (config.data.max_seq_length, config.data.over_length) == (2048, "truncate")
    assert (config.seed, config.name) == (0, "mlx_lm_lora_config")


def test_training_mode_normal_is_accepted_and_changes_nothing(tmp_path: Path) -> None:
    text = TRAINING_MODE_EXAMPLE.read_text()
    assert '\ntraining_mode: "normal"\n' in text
    without = write_config(tmp_path, text.replace('\ntraining_mode: "normal"\n', "\n"))
    with_key = load_config(TRAINING_MODE_EXAMPLE).model_dump(exclude={"name"})
    assert with_key == load_config(without).model_dump(exclude={"name"})


def test_absent_keys_take_mlx_lm_defaults_not_lorascope_ones(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    path = write_config(tmp_path, f"model: tiny-mistral\ntrain: true\ndata: {tmp_path / 'data'}\n")
    config = load_config(path)
    assert config.data.source == str(tmp_path / "data")
    assert (config.lora.num_layers, config.lora.scale, config.lora.target_modules) == (
        16, 20.0, None)
    assert (config.train.optimizer, config.train.learning_rate, config.train.mask_prompt) == (
        "adam", 1e-5, False)
    assert (config.train.iters, config.data.max_seq_length) == (1000, 2048)


def test_lr_schedule_is_the_one_mlx_lm_builds(tmp_path: Path) -> None:
    from mlx_lm.tuner.utils import build_schedule

    schedule = {"name": "cosine_decay", "warmup": 3, "warmup_init": "1e-7",
                "arguments": ["1e-3", 10, "1e-5"]}
    path = write_config(tmp_path, yaml.safe_dump(
        {"model": "tiny-mistral", "learning_rate": 5.0, "lr_schedule": schedule}))
    config = load_config(path)
    assert (config.train.learning_rate, config.train.decay_steps) == (1e-3, 10)
    ours = build_optimizer(config.train)._schedulers["learning_rate"]
    theirs = build_schedule({**schedule, "warmup_init": 1e-7, "arguments": [1e-3, 10, 1e-5]})
    for step in range(16):
        assert ours(mx.array(step)).item() == pytest.approx(theirs(mx.array(step)).item(),
                                                            rel=1e-6), step


def test_optimizer_config_betas_eps_and_weight_decay_reach_the_optimizer(tmp_path: Path) -> None:
    path = write_config(tmp_path, """model: tiny-mistral
optimizer: adamw
optimizer_config:
  adamw:
    betas: [0.9, 0.98]
    eps: 1e-6
    weight_decay: 0.05
    bias_correction: true
""")
    optimizer = build_optimizer(load_config(path).train)
    assert (optimizer.betas, optimizer.eps, optimizer.weight_decay) == ([0.9, 0.98], 1e-6, 0.05)
    assert optimizer.bias_correction is True


def test_an_unknown_key_is_one_line_with_file_line_and_the_nearest_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "model: tiny-mistral\ntrain: true\nlearning_rat: 1e-4\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}:3: learning_rat: unknown mlx-lm key; did you mean learning_rate?")


@pytest.mark.parametrize(("text", "line", "message"), [
    ("train: true\nmodel: m\noptimizer: muon\n", 3, "optimizer: 'muon' is not supported"),
    ("model: m\nlr_schedule:\n  name: step_decay\n  arguments: [1, 2, 3]\n", 2,
     "lr_schedule.name: 'step_decay' is not supported"),
    ("model: m\nresume_adapter_file: old/adapters.safetensors\n", 2, "resume_adapter_file:"),
    ("model: m\ntrain: false\ntest: true\n", 2, "train: false (test only)"),
    ("model: m\nlora_parameters:\n  rnak: 4\n", 2,
     "lora_parameters.rnak: unknown mlx-lm key; did you mean lora_parameters.rank?"),
    ("model: m\nhf_dataset:\n  path: billsum\n  train_split: 'train[:1000]'\n", 2,
     "hf_dataset.train_split: 'train[:1000]'"),
    ("model: m\ntraining_mode: dpo\n", 2, "training_mode: 'dpo' is not supported by lorascope"),
    ("model: m\ntrain: true\ntraining_mode: grpo\n", 3, "training_mode: 'grpo' is not supported"),
])
def test_what_lorascope_cannot_honour_is_refused_naming_file_line_and_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}:{line}: {message}")
    assert "\n" not in str(error.value)


def test_a_bad_value_names_the_mlx_lm_key_and_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "model: m\ntrain: true\nbatch_size: 0\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "batch_size (line 3) (train.batch_size): Input should be greater than 0" in str(
        error.value)


def test_keys_lorascope_does_not_use_are_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, "model: m\nadapter_path: out\nreport_to: wandb\n"
                                  "save_every: 25\n")
    with caplog.at_level(logging.WARNING, logger="lorascope.config"):
        config = load_config(path)
    warned = "\n".join(caplog.messages)
    assert f"{path}:2: adapter_path: 'out' is not used" in warned
    assert f"{path}:3: report_to: 'wandb' is not used" in warned
    assert "save_every: 25 checkpoints at 30" in warned
    assert config.train.save_every == 30


def test_test_and_test_batches_become_the_test_loss_over_that_many_examples(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path, "model: m\ntest: true\ntest_batches: 25\n"
                                                "batch_size: 2\n"))
    assert (config.eval.test_loss, config.eval.test_limit) == (True, 50)
    config = load_config(write_config(tmp_path, "model: m\ntest: true\ntest_batches: -1\n"))
    assert (config.eval.test_loss, config.eval.test_limit) == (True, None)


def test_hf_dataset_and_feature_names_become_the_source_and_column_mapping(tmp_path: Path) -> None:
    path = write_config(tmp_path, """model: m
hf_dataset:
  path: billsum
  prompt_feature: text
  completion_feature: summary
""")
    config = load_config(path)
    assert config.data.source == "hf:billsum"
    assert config.data.columns == {"prompt": "text", "completion": "summary"}


def test_lorascope_settings_go_under_lorascope_and_flat_overrides_name_mlx_lm_keys(
    tmp_path: Path
) -> None:
    path = write_config(tmp_path, "model: m\niters: 50\nlorascope:\n  name: mine\n"
                                  "  eval: {max_tokens: 7}\n  data: {over_length: fail}\n")
    config = load_config(path, ["iters=20", "train.batch_size=2"])
    assert (config.name, config.eval.max_tokens, config.data.over_length) == ("mine", 7, "fail")
    assert (config.train.iters, config.train.batch_size) == (20, 2)


def test_lorascope_own_nested_configs_are_not_taken_for_mlx_lm_ones() -> None:
    assert not mlx_lm_config.is_mlx_lm_config({"model": {"source": "m"}, "train": {"iters": 2}})
    assert mlx_lm_config.is_mlx_lm_config({"iters": 2, "num_layers": 4})
    assert mlx_lm_config.is_mlx_lm_config({"model": "m"})


# ---------------------------------------------------------------- parity with mlx_lm lora


@pytest.fixture(scope="module")
def templated_model(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> Path:
    """tiny-mistral with lorascope's default chat template saved in its tokenizer config, so
    `mlx_lm lora` (which has no default template) formats chats exactly as lorascope does."""
    folder = tmp_path_factory.mktemp("templated") / "tiny-mistral"
    shutil.copytree(tiny_mistral_dir, folder)
    tokenizer_config = folder / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    tokenizer_config.write_text(json.dumps({**settings, "chat_template": MISTRAL_INST_TEMPLATE}))
    return folder


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
MLX_LM_LINE = re.compile(r"^\s*(\d+)\s+(val\s+)?(\d+\.\d+)", re.MULTILINE)


def run_mlx_lm(config: Path, cwd: Path) -> tuple[dict[int, float], dict[int, float]]:
    """`python -m mlx_lm lora -c CONFIG`; its printed (train, val) losses by iteration."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "mlx_lm", "lora", "-c", str(config)],
                            cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    train, val = {}, {}
    for it, is_val, loss in MLX_LM_LINE.findall(ANSI_ESCAPE.sub("", result.stdout)):
        (val if is_val else train)[int(it)] = float(loss)
    return train, val


@pytest.mark.parametrize("data_format", ["completions", "text"])
def test_lorascope_trains_an_mlx_lm_config_to_the_losses_and_adapters_of_mlx_lm_lora(
    tmp_path: Path, templated_model: Path, data_format: str
) -> None:
    """One config file, one data folder, one seed, through `python -m mlx_lm lora` and through
    lorascope's trainer (config translated by load_config, rows tokenized by lorascope).

    Compared: the train loss of each of the 6 steps, the validation loss before training and
    after the last step, and the final adapter weights. The train split is exactly one batch,
    so both tools train on the same batch every step whatever their shuffling (mlx-lm orders
    batches by its own seed and lorascope by (seed, epoch), which differ); the validation loss
    is a token-weighted mean over all of the valid split (8 rows, 2 full batches), so its
    batch order does not matter either. The LoRA init draws from the same seeded MLX RNG in
    both. Every operation is then the same on the same CPU backend, so the expected
    difference is 0: the losses are compared at mlx-lm's printed precision (3 decimals, so
    within 0.0005 plus float error) and the weights within 1e-5 (measured: 0.0)."""
    rows = completions if data_format == "completions" else texts
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", rows(0, 4))
    write_jsonl(data / "valid.jsonl", rows(100, 8))
    config = write_config(tmp_path, yaml.safe_dump({
        "model": str(templated_model), "train": True, "data": str(data), "seed": 3,
        "num_layers": 2, "batch_size": 4, "iters": 6, "val_batches": -1,
        "learning_rate": 1e-3, "steps_per_report": 1, "steps_per_eval": 6, "save_every": 6,
        "max_seq_length": 128, "adapter_path": str(tmp_path / "mlx_lm_adapters"),
        "mask_prompt": data_format == "completions",
        "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.0},
    }))
    theirs_train, theirs_val = run_mlx_lm(config, tmp_path)

    run_config = load_config(config)
    model, tokenizer = load_model(templated_model, run_config.model)
    splits = load_splits(data)
    metrics: list[dict[str, Any]] = []
    result = train_adapters(model, tokenizer, splits["train"], splits["valid"], run_config,
                            templated_model, RunPaths(tmp_path / "run"), "test", "hash",
                            sink=metrics.extend, log=lambda _: None)
    ours_train = {r["step"]: r["loss"] for r in metrics if r["split"] == "train"}
    ours_val = {r["step"] + 1: r["loss"] for r in metrics if r["split"] == "valid"}

    assert sorted(theirs_train) == sorted(ours_train) == [1, 2, 3, 4, 5, 6]
    assert sorted(theirs_val) == sorted(ours_val) == [1, 6]
    for step in theirs_train:
        assert abs(ours_train[step] - theirs_train[step]) <= 0.0005 + 1e-6, step
    for step in theirs_val:
        assert abs(ours_val[step] - theirs_val[step]) <= 0.0005 + 1e-6, step
    assert ours_train[6] < ours_train[1] - 0.01  # the comparison is over real training
    ours = mx.load(str(result.adapter_dir / "adapters.safetensors"))
    theirs = mx.load(str(tmp_path / "mlx_lm_adapters" / "adapters.safetensors"))
    assert ours.keys() == theirs.keys()
    assert max(mx.abs(ours[k] - theirs[k]).max().item() for k in ours) <= 1e-5


# ---------------------------------------------------------------- another mlx-lm version's example


@pytest.fixture
def mlx_model_folder(tmp_path: Path, tiny_mistral_dir: Path, monkeypatch: pytest.MonkeyPatch,
                     ) -> Path:
    """A working folder whose mlx_model/ (the example config's model) is tiny-mistral, with
    local chat data in data/ and its own LORASCOPE_HOME; the test runs in it."""
    (tmp_path / "mlx_model").symlink_to(tiny_mistral_dir)
    chat = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]}
            for r in completions(0, 16)]
    write_jsonl(tmp_path / "data" / "train.jsonl", chat[:10])
    write_jsonl(tmp_path / "data" / "valid.jsonl", chat[10:14])
    write_jsonl(tmp_path / "data" / "test.jsonl", chat[14:])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LORASCOPE_HOME", str(home_with_tiny_mistral(tmp_path / "home",
                                                                    tiny_mistral_dir)))
    return tmp_path


def test_lorascope_validate_passes_the_training_mode_example(
    mlx_model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lorascope.cli import main

    code = main(["validate", str(TRAINING_MODE_EXAMPLE), "--data", "data"])
    assert code == 0, capsys.readouterr().out[-2000:]


def test_the_training_mode_example_trains_on_tiny_mistral(mlx_model_folder: Path) -> None:
    config = load_config(TRAINING_MODE_EXAMPLE, ["data=data", "iters=2"])
    model, tokenizer = load_model(Path(config.model.source), config.model)
    splits = load_splits(Path("data"))
    metrics: list[dict[str, Any]] = []
    result = train_adapters(model, tokenizer, splits["train"], splits["valid"], config,
                            Path("mlx_model"), RunPaths(mlx_model_folder / "run"), "test",
                            "hash", sink=metrics.extend, log=lambda _: None)
    losses = [r["loss"] for r in metrics if r["split"] == "train"]
    assert [r["step"] for r in metrics if r["split"] == "train"] == [2]
    assert all(math.isfinite(loss) for loss in losses)
    adapters = mx.load(str(result.adapter_dir / "adapters.safetensors"))
    assert {key.split(".")[-2] for key in adapters} == {"q_proj", "v_proj"}


# ---------------------------------------------------------------- the pipeline, end to end

TINY_EVAL = {"max_tokens": 4, "batch_size": 8, "capability_limit": 4, "attention_prompts": 0,
             "perplexity_limit": 0, "test_limit": 4}


@pytest.fixture
def pipeline_home(tmp_path: Path, tiny_mistral_dir: Path) -> Path:
    return home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)


def eval_overrides(prompts: Path | None = None) -> list[str]:
    settings = dict(TINY_EVAL, **({"prompts": [str(prompts)]} if prompts else {}))
    return [f"eval.{key}={json.dumps(value)}" for key, value in settings.items()]


def run_pipeline(config: Path, overrides: list[str], home: Path) -> str:
    from lorascope.flows.pipeline import pipeline

    state = pipeline(str(config), overrides, home=str(home), return_state=True)
    assert state.is_completed(), state
    return state.result()


def query(home: Path, sql: str, run_id: str) -> list[tuple]:
    return warehouse.query(warehouse_path(home), sql, [run_id])[1]


@pytest.mark.slow
def test_mlx_lm_example_config_runs_through_the_lorascope_pipeline(
    prefect_harness: Any, tmp_path: Path, pipeline_home: Path
) -> None:
    """mlx-lm's own example file, with only model, data and iters changed (as flat mlx-lm
    overrides, the way `mlx_lm lora -c FILE --iters 4` changes them)."""
    data = tmp_path / "chat"
    chat = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]}
            for r in completions(0, 16)]
    write_jsonl(data / "train.jsonl", chat[:10])
    write_jsonl(data / "valid.jsonl", chat[10:14])
    write_jsonl(data / "test.jsonl", chat[14:])
    run_id = run_pipeline(EXAMPLE, ["model=tiny-mistral", f"data={data}", "iters=4",
                                    *eval_overrides()], pipeline_home)
    saved = yaml.safe_load(RunPaths.of(run_id, pipeline_home).config.read_text())
    assert (saved["lora"]["num_layers"], saved["train"]["learning_rate"]) == (16, 1e-5)
    assert saved["lora"]["target_modules"] == ["self_attn.q_proj", "self_attn.v_proj"]
    steps = query(pipeline_home, "select step from train_metrics where run_id = ? and "
                                 "split = 'train' order by step", run_id)
    assert steps == [(4,)]  # steps_per_report 10: mlx-lm reports the last step
    adapters = RunPaths.of(run_id, pipeline_home).adapters
    assert json.loads((adapters / "adapter_config.json").read_text())["lora_parameters"][
        "keys"] == ["self_attn.q_proj", "self_attn.v_proj"]


@pytest.mark.slow
def test_text_and_completions_data_run_end_to_end_with_long_rows_truncated(
    prefect_harness: Any, tmp_path: Path, pipeline_home: Path
) -> None:
    """A `text` folder (raw-text loss, no template) and a `completions` folder, each through
    the whole flow from an mlx-lm config; one row of each is longer than max_seq_length and
    is truncated (counted in data_preparation), as mlx-lm does, instead of failing."""
    prompts = tmp_path / "eval_prompts.jsonl"
    write_jsonl(prompts, [{"id": f"p{i}", "domain": "in_domain", "category": "sum",
                           "messages": [{"role": "user", "content": f"What is {i} plus 1?"}],
                           "reference": str(i + 1)} for i in range(3)])
    long_text = {"text": " ".join(f"word{i}" for i in range(200))}
    long_completion = {"prompt": "Count.", "completion": long_text["text"]}
    for name, rows, long_row in (("text", texts, long_text),
                                 ("completions", completions, long_completion)):
        data = tmp_path / name
        write_jsonl(data / "train.jsonl", [*rows(0, 7), long_row])
        write_jsonl(data / "valid.jsonl", rows(100, 4))
        write_jsonl(data / "test.jsonl", rows(200, 3))
        config = write_config(tmp_path, yaml.safe_dump({
            "model": "tiny-mistral", "train": True, "data": str(data), "iters": 4,
            "batch_size": 2, "steps_per_report": 2, "save_every": 2, "val_batches": 1,
            "max_seq_length": 64, "num_layers": 2, "learning_rate": 1e-4,
            "lorascope": {"name": f"mlx-{name}"}}))
        run_id = run_pipeline(config, eval_overrides(prompts), pipeline_home)
        home_paths = RunPaths.of(run_id, pipeline_home)
        first = json.loads((home_paths.data / "train.jsonl").read_text().splitlines()[0])
        assert ("text" in first) == (name == "text")
        assert query(pipeline_home, "select split, truncated from data_preparation where "
                                    "run_id = ? order by split", run_id) == [
            ("test", 0), ("train", 1), ("valid", 0)]
        losses = query(pipeline_home, "select loss from train_metrics where run_id = ? and "
                                      "split = 'train' order by step", run_id)
        assert len(losses) == 2 and all(0 < loss < 20 for (loss,) in losses)
        assert "| truncated |" in home_paths.validation_report.read_text()
