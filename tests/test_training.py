"""Training on tiny-mistral: exact resume after SIGKILL, checkpoint fallback, guard rails,
DoRA/QLoRA adapters that mlx-lm loads, and config fields that really take effect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from conftest import Interrupted, interrupt_at

from lorascope.config import RunConfig, parse_config
from lorascope.data.builtin import resolve_data_source
from lorascope.data.sources import load_splits
from lorascope.models.loader import load_model
from lorascope.paths import RunPaths
from lorascope.training.trainer import (
    TrainingError,
    is_out_of_memory,
    out_of_memory_advice,
    train_adapters,
)

ROOT = Path(__file__).resolve().parent.parent

# Dropout > 0 so that the RNG state really has to be restored for an exact resume.
BASE = {
    "seed": 7,
    "model": {"source": "tiny-mistral"},
    "data": {"max_seq_length": 256},
    "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},
    "train": {"iters": 24, "batch_size": 2, "steps_per_report": 2, "save_every": 4,
              "steps_per_eval": 6, "val_batches": 1, "warmup_steps": 2,
              "keep_checkpoints": 10},
}

# One training run in its own process; metric rows go to stdout as JSON lines.
WORKER = """
import json, sys
from pathlib import Path
from lorascope.data.builtin import resolve_data_source
from lorascope.config import parse_config
from lorascope.data.sources import load_splits
from lorascope.models.loader import load_model, resolve_model
from lorascope.paths import RunPaths
from lorascope.training.trainer import train_adapters

config = parse_config(json.loads(sys.argv[1]))
run_dir, home = Path(sys.argv[2]), Path(sys.argv[3])
model_path = resolve_model(config.model.source, home)
splits = load_splits(resolve_data_source(config.data.source, home))
model, tokenizer = load_model(model_path, config.model)
train_adapters(
    model, tokenizer, [r.messages for r in splits["train"]], [r.messages for r in splits["valid"]],
    config, model_path, RunPaths(run_dir), "test", "data-hash",
    sink=lambda rows: print(*(json.dumps(r) for r in rows), sep="\\n", flush=True),
    log=lambda line: print("LOG", line, flush=True),
)
"""


def merged(**sections: dict[str, Any]) -> dict[str, Any]:
    config = json.loads(json.dumps(BASE))
    for section, values in sections.items():
        config[section].update(values)
    return config


def start_worker(config: dict[str, Any], run_dir: Path, home: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(config), str(run_dir), str(home)],
        cwd=ROOT, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT,
    )


def run_worker(config: dict[str, Any], run_dir: Path, home: Path) -> list[dict[str, Any]]:
    out = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    code = start_worker(config, run_dir, home, out).wait(timeout=600)
    assert code == 0, out.read_text()[-3000:]
    return metric_rows(out)


def metric_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]


def adapter_weights(run_dir: Path) -> dict[str, mx.array]:
    return mx.load(str(run_dir / "adapters" / "adapters.safetensors"))


def max_abs_difference(a: dict[str, mx.array], b: dict[str, mx.array]) -> float:
    assert a.keys() == b.keys()
    return max(mx.abs(a[k] - b[k]).max().item() for k in a)


def train_rows(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["step"]: r for r in rows if r["split"] == "train"}


@pytest.fixture(scope="module")
def conversations(session_home: Path, tiny_mistral_dir: Path) -> dict[str, list]:
    splits = load_splits(resolve_data_source("builtin:sciq-format", session_home))
    return {name: [r.messages for r in records] for name, records in splits.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, session_home: Path,
              tiny_mistral_dir: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The uninterrupted run every resumed run must reproduce exactly."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    return run_dir, run_worker(BASE, run_dir, session_home)


def train_here(config: RunConfig, run_dir: Path, model_dir: Path, conversations: dict,
               log: Any = None, sink: Any = None, after_report: Any = None) -> Any:
    model, tokenizer = load_model(model_dir, config.model)
    return train_adapters(
        model, tokenizer, conversations["train"], conversations["valid"], config, model_dir,
        RunPaths(run_dir), "test", "data-hash", sink=sink, log=log or (lambda _: None),
        after_report=after_report,
    )


# ---------------------------------------------------------------- exact resume


def kill_after_checkpoint(config: dict[str, Any], step: int, run_dir: Path, home: Path,
                          log: Path) -> None:
    """Train `config` in a new process and SIGKILL it once its step-`step` checkpoint exists,
    before it can write its adapters."""
    first = start_worker(config, run_dir, home, log)
    crossing = run_dir / "checkpoints" / f"step-{step:07d}"
    deadline = time.monotonic() + 300
    while not crossing.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "adapters").exists()


def test_sigkill_mid_run_then_resume_in_a_new_process_gives_identical_adapters(
    tmp_path: Path, session_home: Path, reference: tuple[Path, list]
) -> None:
    run_dir = tmp_path / "run"
    kill_after_checkpoint(BASE, 8, run_dir, session_home, tmp_path / "first.log")
    killed_at = max(train_rows(metric_rows(tmp_path / "first.log")))

    out = tmp_path / "resume.log"
    assert start_worker(BASE, run_dir, session_home, out).wait(timeout=600) == 0, out.read_text()
    resumed = metric_rows(out)
    resumed_from = int(
        next(line for line in out.read_text().splitlines() if "resuming from" in line)
        .split("(step ")[1].split(" ")[0]
    )

    reference_dir, reference_rows = reference
    assert 8 <= resumed_from <= killed_at
    assert max_abs_difference(adapter_weights(run_dir), adapter_weights(reference_dir)) == 0.0
    # The loss curve continues where the checkpoint left it: no restart at step 1, and every
    # resumed row (loss, learning rate, trained tokens) equals the uninterrupted run's.
    steps = sorted(train_rows(resumed))
    assert steps[0] == resumed_from + BASE["train"]["steps_per_report"]
    assert steps[-1] == BASE["train"]["iters"]
    expected = train_rows(reference_rows)
    for step in steps:
        for key in ("loss", "learning_rate", "trained_tokens"):
            assert train_rows(resumed)[step][key] == expected[step][key], (step, key)


# The same with train.pack (and the default pad_to_multiple): fewer steps, each of several
# examples per row.
PACKED = merged(train={"pack": True, "iters": 12})


def test_a_packed_run_killed_mid_run_resumes_in_a_new_process_to_identical_adapters(
    tmp_path: Path, session_home: Path, tiny_mistral_dir: Path,
) -> None:
    reference = run_worker(PACKED, tmp_path / "reference", session_home)
    run_dir = tmp_path / "run"
    kill_after_checkpoint(PACKED, 4, run_dir, session_home, tmp_path / "first.log")

    out = tmp_path / "resume.log"
    assert start_worker(PACKED, run_dir, session_home, out).wait(timeout=600) == 0, \
        out.read_text()[-3000:]
    assert "resuming from" in out.read_text()
    whole, resumed = adapter_weights(tmp_path / "reference"), adapter_weights(run_dir)
    assert whole.keys() == resumed.keys()
    assert all(mx.array_equal(whole[k], resumed[k]).item() for k in whole)
    # the loss curve continues: every resumed row is the uninterrupted run's, to the last step
    expected, rows = train_rows(reference), train_rows(metric_rows(out))
    assert max(rows) == PACKED["train"]["iters"]
    assert [[rows[s][k] for k in ("loss", "learning_rate", "trained_tokens")] for s in rows] \
        == [[expected[s][k] for k in ("loss", "learning_rate", "trained_tokens")] for s in rows]


@pytest.mark.parametrize("damage", ["flip bytes", "delete marker"])
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(
    damage: str, tmp_path: Path, tiny_mistral_dir: Path, conversations: dict,
    reference: tuple[Path, list],
) -> None:
    config = parse_config(BASE)
    with pytest.raises(Interrupted):
        train_here(config, tmp_path, tiny_mistral_dir, conversations,
                   after_report=interrupt_at(8))
    newest = tmp_path / "checkpoints" / "step-0000008"
    if damage == "flip bytes":
        weights = newest / "adapters.safetensors"
        data = bytearray(weights.read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
        weights.write_bytes(bytes(data))
    else:
        (newest / "COMPLETE").unlink()

    messages: list[str] = []
    result = train_here(config, tmp_path, tiny_mistral_dir, conversations, log=messages.append)

    assert any("step-0000008" in m and "corrupt" in m for m in messages), messages
    assert any("resuming from step-0000004" in m for m in messages), messages
    assert result.resumed_from_step == 4
    assert max_abs_difference(adapter_weights(tmp_path), adapter_weights(reference[0])) == 0.0


# ---------------------------------------------------------------- guard rails


def test_diverging_loss_stops_naming_the_step_and_last_good_checkpoint(
    tmp_path: Path, tiny_mistral_dir: Path, conversations: dict
) -> None:
    # A learning rate of 1e30 blows the LoRA weights up at the first update: step 1 (before any
    # update) is finite and checkpointed, step 2's loss is not.
    config = parse_config(merged(
        lora={"dropout": 0.0},
        train={"iters": 6, "steps_per_report": 1, "save_every": 1, "learning_rate": 1e30,
               "warmup_steps": 0, "lr_schedule": "constant"},
    ))
    with pytest.raises(TrainingError) as error:
        train_here(config, tmp_path, tiny_mistral_dir, conversations)
    assert "at step 2" in str(error.value)
    assert "step-0000001" in str(error.value)


@pytest.mark.parametrize(("section", "field", "value"), [
    ("lora", "rank", 8), ("train", "learning_rate", 1e-3), ("lora", "dropout", 0.0),
])
def test_resume_with_a_changed_config_field_is_refused_naming_the_field(
    section: str, field: str, value: Any, tmp_path: Path, tiny_mistral_dir: Path,
    conversations: dict,
) -> None:
    short = {"iters": 4, "save_every": 2, "warmup_steps": 0}
    train_here(parse_config(merged(train=short)), tmp_path, tiny_mistral_dir, conversations)
    changed = merged(train=short)
    changed[section][field] = value
    with pytest.raises(TrainingError) as error:
        train_here(parse_config(changed), tmp_path, tiny_mistral_dir, conversations)
    assert f"{section}.{field}" in str(error.value)
    assert "step-0000004" in str(error.value)


def test_a_changed_resume_safe_field_still_resumes(
    tmp_path: Path, tiny_mistral_dir: Path, conversations: dict
) -> None:
    short = {"iters": 4, "save_every": 2, "warmup_steps": 0}
    train_here(parse_config(merged(train=short)), tmp_path, tiny_mistral_dir, conversations)
    result = train_here(parse_config(merged(train={**short, "keep_checkpoints": 5})),
                        tmp_path, tiny_mistral_dir, conversations)
    assert result.resumed_from_step == 4


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[malloc] Unable to allocate 68719476736 bytes."),
    RuntimeError("[metal::malloc] Attempting to allocate 103918075904 bytes which is greater "
                 "than the maximum allowed buffer size of 77309411328 bytes."),
    RuntimeError("std::bad_alloc"),
])
def test_allocation_failures_are_recognised_as_out_of_memory(error: BaseException) -> None:
    assert is_out_of_memory(error)


def test_other_runtime_errors_are_not_out_of_memory() -> None:
    assert not is_out_of_memory(RuntimeError("[matmul] Last dimension of first input mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_out_of_memory_advice_names_the_settings_to_lower_with_their_values() -> None:
    config = parse_config(merged(train={"batch_size": 8}, data={"max_seq_length": 1024}))
    advice = out_of_memory_advice(config, step=40)
    for setting in ("train.batch_size (now 8", "data.max_seq_length (now 1024",
                    "train.grad_checkpoint", "model.quantize_bits", "lora.num_layers"):
        assert setting in advice
    assert "after step 40" in advice


def test_out_of_memory_advice_skips_settings_already_at_their_lowest() -> None:
    config = parse_config(merged(train={"grad_checkpoint": True}, model={"quantize_bits": 4},
                                 lora={"num_layers": 2}))
    advice = out_of_memory_advice(config, step=None)
    assert "grad_checkpoint" not in advice
    assert "quantize_bits" not in advice
    assert "lora.num_layers" not in advice
    assert "train.batch_size" in advice


# ---------------------------------------------------------------- DoRA, QLoRA, mlx-lm layout


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dora", "qlora"])
def test_dora_and_qlora_adapters_load_and_generate_with_mlx_lm(
    variant: str, tmp_path: Path, tiny_mistral_dir: Path, conversations: dict
) -> None:
    from mlx_lm import load
    from mlx_lm.tuner.dora import DoRALinear
    from mlx_lm.tuner.lora import LoRALinear

    sections: dict[str, dict] = {"train": {"iters": 2, "save_every": 2, "warmup_steps": 0}}
    if variant == "dora":
        sections["lora"] = {"fine_tune_type": "dora"}
    else:
        sections["model"] = {"quantize_bits": 4}
    config = parse_config(merged(**sections))
    model, tokenizer = load_model(tiny_mistral_dir, config.model, home=tmp_path)
    train_adapters(model, tokenizer, conversations["train"], conversations["valid"], config,
                   tiny_mistral_dir, RunPaths(tmp_path), "test", "data-hash", log=lambda _: None)
    q_proj = model.layers[0].self_attn.q_proj
    if variant == "dora":
        assert isinstance(q_proj, DoRALinear)
    else:
        assert isinstance(q_proj, LoRALinear)
        assert type(q_proj.linear).__name__ == "QuantizedLinear"
        assert q_proj.linear.bits == 4

    adapters = tmp_path / "adapters"
    loaded, _ = load(str(tiny_mistral_dir), adapter_path=str(adapters))
    expected = DoRALinear if variant == "dora" else LoRALinear
    assert isinstance(loaded.layers[0].self_attn.q_proj, expected)

    cli = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "generate", "--model", str(tiny_mistral_dir),
         "--adapter-path", str(adapters), "--prompt", "hi", "--max-tokens", "3"],
        capture_output=True, text=True, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "Generation:" in cli.stdout


# ---------------------------------------------------------------- settings take effect


def test_grad_accumulation_makes_one_update_per_n_micro_batches(
    tmp_path: Path, tiny_mistral_dir: Path, conversations: dict
) -> None:
    train = {"iters": 8, "save_every": 8, "steps_per_report": 2, "warmup_steps": 0}
    for accumulation in (1, 4):
        config = parse_config(merged(train={**train, "grad_accumulation_steps": accumulation}))
        train_here(config, tmp_path / str(accumulation), tiny_mistral_dir, conversations)
        optimizer = mx.load(str(tmp_path / str(accumulation) / "checkpoints" / "step-0000008"
                                / "optimizer.safetensors"))
        assert optimizer["step"].item() == 8 // accumulation
    assert max_abs_difference(adapter_weights(tmp_path / "1"), adapter_weights(tmp_path / "4")) > 0


def test_target_modules_limit_which_layers_get_adapters(
    tmp_path: Path, tiny_mistral_dir: Path, conversations: dict
) -> None:
    config = parse_config(merged(
        lora={"target_modules": ["self_attn.q_proj", "self_attn.v_proj"], "num_layers": 1},
        train={"iters": 2, "save_every": 2, "warmup_steps": 0},
    ))
    result = train_here(config, tmp_path, tiny_mistral_dir, conversations)
    adapted = {name.rsplit(".", 1)[0] for name in adapter_weights(tmp_path)}
    assert adapted == {"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}
    saved = json.loads((tmp_path / "adapters" / "adapter_config.json").read_text())
    assert saved["lora_parameters"]["keys"] == ["self_attn.q_proj", "self_attn.v_proj"]
    # q_proj 64→64 and v_proj 64→32 (2 KV heads × 16), rank 4: A is in×4, B is 4×out.
    assert result.trainable_parameters == (64 * 4 + 4 * 64) + (64 * 4 + 4 * 32)
