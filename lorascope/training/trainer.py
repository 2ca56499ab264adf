"""LoRA / DoRA / full fine-tuning on mlx-lm's trainer, with checkpoints that resume exactly.

mlx-lm's `train()` takes its batch iterator and callback as arguments, so we extend it
instead of forking it: `resumable_batches` makes the data order a pure function of
(seed, batch number) and can start mid-stream, and `CheckpointCallback` saves adapter,
optimizer state, step and data position at report boundaries. mlx-lm itself restores only
adapter weights and restarts at step 1.

MLX's global RNG (used by LoRA dropout) cannot be read back into the generator, so at every
checkpoint boundary both a fresh and a resumed run re-seed it from (seed, step): the RNG
state at a checkpoint is then determined by what the checkpoint records.

Over several processes (train.ranks, mx.distributed), mlx-lm's train() averages gradients
over the ranks; every rank walks the same global batches and takes its share of their rows,
`global_batch_loss` keeps the loss the global batch's, and only rank 0 writes checkpoints,
metrics and adapters.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lorascope.config import LoraConfig, RunConfig, TrainConfig
from lorascope.data.records import Record
from lorascope.errors import LorascopeError
from lorascope.models.chat import conversation_tokens, text_tokens
from lorascope.models.chunked_attention import WholeRows, chunkable, use_chunked_attention
from lorascope.models.heads import counted_positions, gathered_cross_entropy, split_head
from lorascope.paths import RunPaths
from lorascope.training.batching import collate_packed, packable, packed_batches, packed_loss
from lorascope.training.checkpoints import (
    NonFiniteCheckpoint,
    latest_valid_checkpoint,
    rng_seed_at,
    save_checkpoint,
)

Example = tuple[list[int], int]  # token ids, offset where the loss starts (mask-prompt)
MetricsSink = Callable[[list[dict[str, Any]]], None]



class TrainingError(LorascopeError, RuntimeError):
    """Training stopped for a reason a person must act on (NaN loss, resume mismatch).

    Deterministic: retrying the same run would fail the same way.
    """

    exit_code = 6


# What MLX (CPU allocator, Metal, CUDA) and the C++/Python runtimes say when memory runs out.
OUT_OF_MEMORY_SIGNS = (
    "[malloc]", "[metal::malloc]", "[cuda::malloc]", "unable to allocate", "out of memory",
    "bad_alloc", "attempting to allocate", "resource limit",
)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(sign in text for sign in OUT_OF_MEMORY_SIGNS)


def out_of_memory_advice(config: RunConfig, step: int | None) -> str:
    """What to lower, most effective first, with the values this run used."""
    tc = config.train
    where = f"after step {step}" if step is not None else "before its first report"
    advice = [f"train.batch_size (now {tc.batch_size}; halving it roughly halves activations)",
              f"data.max_seq_length (now {config.data.max_seq_length})"]
    if not tc.grad_checkpoint:
        advice.append("set train.grad_checkpoint: true (recomputes activations, ~1/3 slower)")
    if config.model.quantize_bits is None:
        advice.append("model.quantize_bits: 4 (QLoRA; base weights take ~1/4 of the memory)")
    if config.lora.num_layers < 0 or config.lora.num_layers > 4:
        advice.append(f"lora.num_layers (now {config.lora.num_layers}; -1 means all layers)")
    return (f"training ran out of memory {where}. Lower, in this order: " + "; ".join(advice)
            + ". `lorascope plan CONFIG` predicts the peak memory of a setting before running.")


# ---------------------------------------------------------------- data order


def tokenize_examples(
    rows: Sequence[Record | list[dict[str, str]]], tokenizer: Any, mask_prompt: bool
) -> list[Example]:
    """Token ids and loss offsets, as mlx-lm's datasets make them: `text` rows are the raw
    text (TextDataset: no chat template, nothing masked); chat rows go through the chat
    template with their tool definitions (ChatDataset, CompletionsDataset)."""
    examples = []
    for row in rows:
        if isinstance(row, Record) and row.text is not None:
            examples.append((text_tokens(tokenizer, row.text), 0))
            continue
        messages, tools = (row.messages, row.tools) if isinstance(row, Record) else (row, None)
        ids, offset = conversation_tokens(tokenizer, messages, tools)
        examples.append((ids, offset if mask_prompt else 0))
    return examples


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of similar-length examples (less padding), as mlx-lm's iterate_batches makes."""
    if len(lengths) < batch_size:
        raise TrainingError(
            f"dataset has {len(lengths)} examples, fewer than batch_size={batch_size}"
        )
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def batch_schedule(n_batches: int, seed: int, start: int) -> Iterator[int]:
    """Batch indices for global positions start, start+1, ...: epoch e is a seeded shuffle."""
    epoch, position = divmod(start, n_batches)
    while True:
        permutation = np.random.default_rng([seed, epoch]).permutation(n_batches)
        yield from (int(i) for i in permutation[position:])
        epoch, position = epoch + 1, 0


def collate(
    examples: Sequence[Example], max_seq_length: int, pad_to: int = 32
) -> tuple[Any, Any]:
    """Pad to 1 + a multiple of `pad_to` and return (tokens, [offset, length]).

    mlx-lm's rule with its fixed 32 made a setting (train.pad_to_multiple): the model reads
    a multiple of `pad_to` positions, and the one position past the longest row stays, the
    padding target mlx-lm's default_loss counts, so losses stay mlx-lm's."""
    import mlx.core as mx

    lengths = [min(len(ids), max_seq_length) for ids, _ in examples]
    width = min(1 + pad_to * ((max(lengths) + pad_to - 1) // pad_to), max_seq_length)
    tokens = np.zeros((len(examples), width), np.int32)
    for row, ((ids, _), length) in enumerate(zip(examples, lengths, strict=True)):
        tokens[row, :length] = ids[:length]
    bounds = [(offset, length) for (_, offset), length in zip(examples, lengths, strict=True)]
    return mx.array(tokens), mx.array(bounds)


def resumable_batches(
    dataset: Sequence[Example],
    batch_size: int,
    max_seq_length: int,
    loop: bool = False,
    comm_group: Any = None,
    *,
    seed: int = 0,
    start: int = 0,
    pad_to: int = 32,
    pack: bool = False,
    positions: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """Drop-in for mlx-lm's `iterate_batches`; `start` skips batches already trained on,
    `pad_to` is `collate`'s padding multiple. With `positions`, each batch also carries the
    flat positions of the targets its loss counts (`target_loss`: logits only there).
    With `pack`, batches are packed rows (`batching.collate_packed`: tokens, segments,
    positions, for `batching.packed_loss`) in the same seeded order of batches; validation
    batches hold one example per row.

    Over several ranks (`comm_group` of size > 1) every rank walks the same global batches
    and takes rows rank, rank + size, ... (mlx-lm's sharding), padded as the whole batch is;
    a training batch then also carries the global batch's loss-token count, which
    `global_batch_loss` divides by."""
    import mlx.core as mx

    lengths = [len(ids) for ids, _ in dataset]
    if pack and loop:
        packed = packed_batches(lengths, batch_size, max_seq_length, pad_to)
        if not packed:
            raise TrainingError(f"{len(lengths)} examples fill fewer than batch_size="
                                f"{batch_size} packed rows")
        for index in batch_schedule(len(packed), seed, start):  # never ends
            yield collate_packed([[dataset[i] for i in row] for row in packed[index]],
                                 max_seq_length, pad_to)
    batches = length_sorted_batches(lengths, batch_size)
    rank, size = (comm_group.rank(), comm_group.size()) if comm_group is not None else (0, 1)
    # validation: a fixed order, independent of training progress
    order = batch_schedule(len(batches), seed, start) if loop else range(len(batches))
    for index in order:
        rows = [dataset[i] for i in batches[index]]
        if pack:
            yield collate_packed([[row] for row in rows], max_seq_length, pad_to)
            continue
        tokens, bounds = collate(rows, max_seq_length, pad_to)
        batch = (tokens, bounds) if size == 1 else (tokens[rank::size], bounds[rank::size])
        if positions:
            counted = default_loss_targets(np.array(batch[1]), tokens.shape[1])
            batch = (*batch, mx.array(counted_positions(counted)))
        yield (*batch, loss_tokens(tokens, bounds)) if loop and size > 1 else batch


def default_loss_targets(bounds: np.ndarray, width: int) -> np.ndarray:
    """mlx-lm default_loss's mask of counted targets (rows x width - 1; target t is token
    t + 1): from each row's offset to one past its last token."""
    steps = np.arange(1, width)
    return (steps >= bounds[:, 0:1]) & (steps <= bounds[:, 1:])


def loss_tokens(tokens: Any, bounds: Any) -> Any:
    """How many targets mlx-lm's default_loss counts in a batch (its mask, summed)."""
    import mlx.core as mx

    steps = mx.arange(1, tokens.shape[1])
    return mx.logical_and(steps >= bounds[:, 0:1], steps <= bounds[:, 1:]).sum()


def target_loss(
    model: Any, tokens: Any, bounds: Any, positions: Any, batch_tokens: Any = None, *,
    world_size: int = 1,
) -> tuple[Any, Any]:
    """mlx-lm's default_loss with logits computed only at the targets it counts
    (`positions`): the same value up to the order of float summation, without the output
    projection and vocabulary softmax at prompt and padding positions. `batch_tokens` and
    `world_size` as in `global_batch_loss`. Attention runs causal in query chunks on long
    rows (`models.chunked_attention`)."""
    body, head = split_head(model)
    hidden = body(tokens[:, :-1], [WholeRows()] * len(model.layers))
    total, count = gathered_cross_entropy(hidden, head, tokens[:, 1:], positions)
    return rescaled_to_global_batch(total / count, count, batch_tokens, world_size)


def global_batch_loss(
    model: Any, tokens: Any, bounds: Any, batch_tokens: Any = None, *, world_size: int
) -> tuple[Any, Any]:
    """mlx-lm's default_loss over a rank's rows, rescaled by `rescaled_to_global_batch`
    (for model code whose head `models.heads` cannot split off; `target_loss` otherwise)."""
    from mlx_lm.tuner.trainer import default_loss

    loss, targets = default_loss(model, tokens, bounds)
    return rescaled_to_global_batch(loss, targets, batch_tokens, world_size)


def rescaled_to_global_batch(
    loss: Any, targets: Any, batch_tokens: Any, world_size: int
) -> tuple[Any, Any]:
    """A rank's mean loss rescaled so that the mean over ranks (what mlx-lm's
    average_gradients and reported loss take) is the loss of the global batch: the sum over
    its targets / their number, as one process computes it. Averaging the ranks' own means
    instead would weight rows by how many targets their rank happens to hold. Validation
    batches carry no count: mlx-lm's evaluate() weights by tokens itself."""
    if batch_tokens is None:
        return loss, targets
    return loss * targets * world_size / batch_tokens, targets


# ---------------------------------------------------------------- resume contract

# Fields that may change between an interrupted run and its resume without changing the
# result: everything else in the config must match exactly.
RESUME_SAFE_FIELDS = {
    ("train", "steps_per_eval"), ("train", "val_batches"), ("train", "keep_checkpoints"),
    # how many processes train: the same data order and checkpoint, up to float summation
    ("train", "ranks"), ("train", "hostfile"),
    # how wide batches are padded: the same rows and targets, up to float summation
    ("train", "pad_to_multiple"),
    ("eval",), ("name",),
}
# Fields added since checkpoints were first written: a checkpoint without one had its default.
ADDED_FIELDS = {("train", "pack"): False}


def resume_conflicts(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted names of config fields that differ in a way that breaks exact resume."""
    conflicts = []

    def walk(a: Any, b: Any, path: tuple[str, ...]) -> None:
        if any(path[: len(safe)] == safe for safe in RESUME_SAFE_FIELDS):
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                missing = ADDED_FIELDS.get((*path, key))
                walk(a.get(key, missing), b.get(key, missing), (*path, key))
        elif a != b:
            conflicts.append(".".join(path))

    walk(saved, current, ())
    return conflicts


# ---------------------------------------------------------------- training


def training_loss(model: Any, train: TrainConfig) -> Callable[..., tuple[Any, Any]]:
    """The loss for the batches `resumable_batches` makes for this model and config: logits
    only at counted targets where the model's head splits off (`models.heads`), mlx-lm's
    default_loss otherwise; per rank rescaled to the global batch over several ranks. On
    model code that allows it, attention over long rows runs in query chunks."""
    from mlx_lm.tuner.trainer import default_loss

    if chunkable(model):
        use_chunked_attention()

    if train.pack:
        return packed_loss
    if split_head(model) is not None:
        return partial(target_loss, world_size=train.ranks)
    return partial(global_batch_loss, world_size=train.ranks) if train.ranks > 1 else default_loss


def build_optimizer(train: TrainConfig) -> Any:
    import mlx.optimizers as optim

    updates = math.ceil(train.iters / train.grad_accumulation_steps)
    decay_steps = train.decay_steps or max(updates - train.warmup_steps, 1)
    if train.lr_schedule == "cosine_decay":
        # mlx-lm's own builder, so that an mlx-lm lr_schedule means here what it means there.
        from mlx_lm.tuner.utils import build_schedule

        lr: Any = build_schedule({
            "name": "cosine_decay", "warmup": train.warmup_steps, "warmup_init": train.warmup_init,
            "arguments": [train.learning_rate, decay_steps, train.min_learning_rate or 0.0],
        })
    else:
        if train.lr_schedule == "cosine":
            end = train.min_learning_rate
            lr = optim.cosine_decay(train.learning_rate, decay_steps,
                                    train.learning_rate * 0.1 if end is None else end)
        else:
            lr = train.learning_rate
        if train.warmup_steps:
            warmup = optim.linear_schedule(train.warmup_init, train.learning_rate,
                                           train.warmup_steps)
            after = lr if callable(lr) else (lambda _: train.learning_rate)
            lr = optim.join_schedules([warmup, after], [train.warmup_steps])
    adam = {"learning_rate": lr, "betas": list(train.betas), "eps": train.eps,
            "bias_correction": train.bias_correction}
    if train.optimizer == "adamw":
        return optim.AdamW(**adam, weight_decay=train.weight_decay)
    return optim.Adam(**adam)


def learning_rate_schedule(train: TrainConfig) -> list[tuple[int, float]]:
    """(step, learning rate) at each optimizer update of a run with these settings: the
    run's own optimizer (build_optimizer) stepped through mlx's apply_gradients with nothing
    to update, so the rates are those training used (mlx-lm reports the same at a report)."""
    optimizer = build_optimizer(train)
    every = train.grad_accumulation_steps
    points = []
    for update in range(1, math.ceil(train.iters / every) + 1):
        optimizer.apply_gradients({}, {})
        points.append((min(update * every, train.iters), optimizer.learning_rate.item()))
    return points


def attach_adapters(model: Any, lora: LoraConfig) -> None:
    """Freeze the base and add trainable LoRA/DoRA layers (or unfreeze for full tuning)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    if lora.fine_tune_type == "full":
        layers = model.layers if lora.num_layers < 0 else model.layers[-lora.num_layers :]
        for layer in layers:
            layer.unfreeze()
        return
    linear_to_lora_layers(
        model, lora.num_layers, lora.mlx_lm_parameters(), use_dora=lora.fine_tune_type == "dora"
    )


def adapter_config(config: RunConfig, model_path: Path) -> dict[str, Any]:
    """adapter_config.json in mlx-lm's own layout, so `mlx_lm.generate --adapter-path` works."""
    lora = config.lora
    return {
        "model": str(model_path),
        "fine_tune_type": lora.fine_tune_type,
        "num_layers": lora.num_layers,
        "lora_parameters": lora.mlx_lm_parameters() if lora.fine_tune_type != "full" else None,
        "batch_size": config.train.batch_size,
        "iters": config.train.iters,
        "learning_rate": config.train.learning_rate,
        "max_seq_length": config.data.max_seq_length,
        "mask_prompt": config.train.mask_prompt,
        "grad_checkpoint": config.train.grad_checkpoint,
        "seed": config.seed,
        "lora_alpha": lora.alpha,
    }


class CheckpointCallback:
    """mlx-lm TrainingCallback: metrics out, checkpoints at save_every, NaN guard, RNG re-seed.

    Only the `writer` (rank 0 of several) sends metrics, writes checkpoints and calls
    `after_report`; every rank re-seeds its RNG."""

    def __init__(
        self, *, model: Any, optimizer: Any, config: RunConfig, checkpoints: Path,
        step_offset: int, state: dict[str, Any], sink: MetricsSink | None,
        after_report: Callable[[int], None] | None = None, writer: bool = True,
    ) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.checkpoints, self.offset, self.state, self.sink = checkpoints, step_offset, state, sink
        self.after_report, self.writer = after_report, writer
        self.last_checkpoint: Path | None = None
        self.last_step: int | None = None
        # mlx-lm counts trained tokens from the start of each train() call.
        self.tokens_before = int(state.get("trained_tokens", 0))

    def on_train_loss_report(self, info: dict[str, Any]) -> None:
        import mlx.core as mx

        step = self.offset + info["iteration"]
        self.last_step = step
        loss = info["train_loss"]
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss became {loss} at step {step}; last good checkpoint: "
                f"{self.last_checkpoint or 'none'}. Lower train.learning_rate or check the data."
            )
        trained_tokens = self.tokens_before + int(info["trained_tokens"])
        self._emit(step, "train", loss, {**info, "trained_tokens": trained_tokens})
        if step % self.config.train.save_every == 0 or step == self.config.train.iters:
            rng_seed = rng_seed_at(self.config.seed, step)
            mx.random.seed(rng_seed)
            if self.writer:
                self._save(step, rng_seed, trained_tokens)
        if self.writer and self.after_report is not None:
            self.after_report(step)

    def _save(self, step: int, rng_seed: int, trained_tokens: int) -> None:
        try:
            self.last_checkpoint = save_checkpoint(
                self.checkpoints, step, self.model, self.optimizer,
                {**self.state, "batches_consumed": step, "rng_seed": rng_seed,
                 "trained_tokens": trained_tokens},
                self.config.train.keep_checkpoints,
            )
        except NonFiniteCheckpoint as error:
            raise TrainingError(
                f"{error}; last good checkpoint: {self.last_checkpoint or 'none'}. Lower "
                "train.learning_rate or check the data."
            ) from error

    def on_val_loss_report(self, info: dict[str, Any]) -> None:
        self._emit(self.offset + info["iteration"], "valid", info["val_loss"], info)

    def _emit(self, step: int, split: str, loss: float, info: dict[str, Any]) -> None:
        if self.sink is None or not self.writer:
            return
        self.sink([{
            "step": step, "split": split, "loss": float(loss),
            "learning_rate": info.get("learning_rate"),
            "tokens_per_second": info.get("tokens_per_second"),
            "trained_tokens": info.get("trained_tokens"),
            "peak_memory_gb": info.get("peak_memory"),
        }])


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    resumed_from_step: int
    seconds: float
    trainable_parameters: int


def train_adapters(
    model: Any,
    tokenizer: Any,
    train_conversations: Sequence[Record | list[dict[str, str]]],
    valid_conversations: Sequence[Record | list[dict[str, str]]],
    config: RunConfig,
    model_path: Path,
    paths: RunPaths,
    code_version: str,
    data_hash: str,
    sink: MetricsSink | None = None,
    log: Callable[[str], None] = print,
    after_report: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train (or resume) the run's adapters; returns when `adapters/` holds the final ones.

    `after_report(step)` is called after each reported step and its checkpoint. With
    train.ranks > 1 every rank of the mx.distributed group calls this; only rank 0 writes."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.tuner.trainer import TrainingArgs, train

    tc = config.train
    world = mx.distributed.init()
    if world.size() != tc.ranks:
        raise TrainingError(
            f"train.ranks is {tc.ranks} but this process is one of {world.size()}: train "
            "through lorascope (it starts train.ranks processes with mlx.launch), with as many "
            "hosts in train.hostfile as train.ranks"
        )
    writer = world.rank() == 0
    if tc.pack and (reason := packable(model)) is not None:
        raise TrainingError(f"{reason}: set train.pack: false")
    loss = training_loss(model, tc)
    checkpoints, adapters = paths.checkpoints, paths.adapters
    state = {"config": config.model_dump(mode="json"), "config_hash": config.config_hash(),
             "code_version": code_version, "data_hash": data_hash}

    mx.random.seed(config.seed)
    attach_adapters(model, config.lora)
    optimizer = build_optimizer(tc)
    done, trained_tokens = 0, 0
    latest = latest_valid_checkpoint(checkpoints, warn=log)
    if latest is not None:
        done, trained_tokens = _restore(latest, model, optimizer, config, data_hash, tree_unflatten)
        log(f"resuming from {latest.name} (step {done} of {tc.iters})")
    if done < tc.iters:
        train_set = tokenize_examples(train_conversations, tokenizer, tc.mask_prompt)
        valid_set = tokenize_examples(valid_conversations, tokenizer, tc.mask_prompt)
        callback = CheckpointCallback(
            model=model, optimizer=optimizer, config=config, checkpoints=checkpoints,
            step_offset=done, state={**state, "trained_tokens": trained_tokens}, sink=sink,
            after_report=after_report, writer=writer,
        )
        args = TrainingArgs(
            batch_size=tc.batch_size, iters=tc.iters - done, val_batches=tc.val_batches,
            steps_per_report=tc.steps_per_report, steps_per_eval=tc.steps_per_eval,
            # mlx-lm's own adapter saving is redundant with our checkpoints: never trigger it.
            steps_per_save=tc.iters + 1, adapter_file=str(paths.mlx_lm_scratch_adapters),
            max_seq_length=config.data.max_seq_length, grad_checkpoint=tc.grad_checkpoint,
            grad_accumulation_steps=tc.grad_accumulation_steps,
        )
        # mlx-lm's grad_checkpoint patches the layer class itself; undo it so that a retry in
        # the same process (Prefect) does not wrap the call twice.
        layer_class = type(model.layers[0])
        layer_call = layer_class.__call__
        tic = time.perf_counter()
        try:
            train(
                model=model, optimizer=optimizer, train_dataset=train_set, val_dataset=valid_set,
                args=args, loss=loss,
                iterate_batches=partial(resumable_batches, seed=config.seed, start=done,
                                        pad_to=tc.pad_to_multiple, pack=tc.pack,
                                        positions=split_head(model) is not None),
                training_callback=callback,
            )
        except (MemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            raise TrainingError(out_of_memory_advice(config, callback.last_step)) from error
        finally:
            layer_class.__call__ = layer_call
        seconds = time.perf_counter() - tic
        if writer:
            paths.mlx_lm_scratch_adapters.unlink(missing_ok=True)
    else:
        seconds = 0.0
    if writer:
        final = latest_valid_checkpoint(checkpoints, warn=log)
        assert final is not None  # the last training step always checkpoints
        _publish_adapters(final, adapters, adapter_config(config, model_path))
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    return TrainResult(adapters, tc.iters, done, seconds, trainable)


def _restore(
    checkpoint: Path, model: Any, optimizer: Any, config: RunConfig, data_hash: str,
    tree_unflatten: Callable[[list[tuple[str, Any]]], Any],
) -> tuple[int, int]:
    """Load adapter, optimizer and RNG state; returns (step, trained tokens) at the checkpoint."""
    import mlx.core as mx

    saved = json.loads((checkpoint / "state.json").read_text())
    conflicts = resume_conflicts(saved["config"], config.model_dump(mode="json"))
    if saved["data_hash"] != data_hash:
        conflicts.append("data (training files changed; data hash differs)")
    if conflicts:
        raise TrainingError(
            f"cannot resume from {checkpoint}: changed since it was written: "
            + ", ".join(conflicts)
            + ". Start a new run, or restore the original values."
        )
    adapter_weights = mx.load(str(checkpoint / "adapters.safetensors"))
    model.load_weights(list(adapter_weights.items()), strict=False)
    optimizer_state = mx.load(str(checkpoint / "optimizer.safetensors"))
    optimizer.state = tree_unflatten(list(optimizer_state.items()))
    mx.random.seed(saved["rng_seed"])
    mx.eval(model.parameters(), optimizer.state)
    return int(saved["step"]), int(saved.get("trained_tokens", 0))


def _publish_adapters(checkpoint: Path, adapters: Path, config: dict[str, Any]) -> None:
    adapters.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / "adapters.safetensors", adapters / "adapters.safetensors")
    (adapters / "adapter_config.json").write_text(json.dumps(config, indent=4))
