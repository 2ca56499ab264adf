"""Predict a training run's cost before it runs: parameters, peak memory, time, energy.

Pure functions over the model's dimensions (its config.json) and the run config. The memory
model counts what MLX holds at the peak of a LoRA step: the base weights at their stored
dtype or quantization, the adapters with their gradients and Adam moments, and the
activations kept for the backward pass. Its per-token coefficients were measured on this
machine with `mx.get_peak_memory()` (tiny-mistral and smollm2-135m, batch 1-4, sequence
128-512, with and without gradient checkpointing; all within 2 %) and are checked by
tests/test_planner.py. Time comes from a FLOP count and an effective FLOP rate per hardware,
derived from measured or published tokens/s (docs/training.md gives the sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lorascope.config import LoraConfig, RunConfig

GB = 1e9

# Activations kept for the backward pass, in values per token per adapted block:
# ~8 hidden-sized tensors (norm inputs/outputs, q, attention output, residuals), ~4.5
# intermediate-sized ones (gate, up, the SiLU and its product), and one attention
# probability row per head (MLX's CPU/GPU attention materialises them for the backward).
ACT_PER_HIDDEN, ACT_PER_INTERMEDIATE, ACT_PER_HEAD_POSITION = 8.0, 4.5, 1.0
# The LM head: logits, their log-softmax and the logits' gradient, ~4 float32 values per
# vocabulary entry per token: at vocab 32 000 this dominates small models.
HEAD_BYTES_PER_VOCAB = 16.0
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelDims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    dtype_bytes: int

    @property
    def block_linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one transformer block, by mlx-lm module path."""
        h, i = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv),
            "self_attn.v_proj": (h, kv), "self_attn.o_proj": (q, h),
            "mlp.gate_proj": (h, i), "mlp.up_proj": (h, i), "mlp.down_proj": (i, h),
        }

    @property
    def block_parameters(self) -> int:
        return sum(a * b for a, b in self.block_linears.values()) + 2 * self.hidden

    @property
    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * self.block_parameters + self.hidden


def dims_from_config(config: dict[str, Any]) -> ModelDims:
    """Dimensions from a Hugging Face config.json (Llama/Mistral layout)."""
    heads = config["num_attention_heads"]
    return ModelDims(
        hidden=config["hidden_size"], intermediate=config["intermediate_size"],
        layers=config["num_hidden_layers"], heads=heads,
        kv_heads=config.get("num_key_value_heads", heads),
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        vocab=config["vocab_size"], tied_embeddings=bool(config.get("tie_word_embeddings")),
        dtype_bytes=DTYPE_BYTES.get(config.get("torch_dtype", "float32"), 4),
    )


_MISTRAL_7B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
               "vocab_size": 32000, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
# For Hub ids that are not on this machine (their config.json would need the network).
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "mistralai/Mistral-7B-v0.1": _MISTRAL_7B,
    "mistralai/Mistral-7B-Instruct-v0.2": _MISTRAL_7B,
    "mistralai/Mistral-7B-v0.3": {**_MISTRAL_7B, "vocab_size": 32768},
    "mistralai/Mistral-7B-Instruct-v0.3": {**_MISTRAL_7B, "vocab_size": 32768},
}


@dataclass(frozen=True)
class Hardware:
    name: str
    train_flops: float  # effective FLOP/s of LoRA training, all overheads included
    watts: float
    source: str


# Effective rates: published or measured tokens/s × this module's FLOPs per token for that
# run (docs/training.md shows the arithmetic). Watts are typical wall power under load.
HARDWARE = {
    "m2-ultra": Hardware("Apple M2 Ultra", 9.5e12, 200.0,
                         "mlx-examples lora/README.md: Llama 7B LoRA ~475 tok/s"),
    "m1-max": Hardware("Apple M1 Max 32 GB", 4.06e12, 90.0,
                       "mlx-examples llms/mlx_lm/LORA.md: Mistral-7B, batch 1, 4 layers, "
                       "~250 tok/s"),
    "linux-cpu-2core": Hardware("2-core x86_64, MLX CPU + OpenBLAS", 8.0e10, 65.0,
                                "measured here, idle machine: smollm2-135m LoRA ~150 tok/s"),
}


@dataclass(frozen=True)
class DataStats:
    """What the planner needs to know about the training split, in tokens."""
    examples: int
    mean_tokens: float
    longest_tokens: int


@dataclass(frozen=True)
class Plan:
    trainable_parameters: int
    total_parameters: int
    memory_gb: dict[str, float]
    sequence_length: int
    tokens_per_step: float
    steps_per_epoch: int | None
    flops_per_token: float
    tokens_per_second: float
    seconds_per_epoch: float | None
    seconds_for_run: float
    energy_kwh: float
    cost: float
    hardware: Hardware
    notes: list[str] = field(default_factory=list)

    @property
    def peak_memory_gb(self) -> float:
        return sum(self.memory_gb.values())


def adapted_layers(dims: ModelDims, lora: LoraConfig) -> int:
    return dims.layers if lora.num_layers < 0 else min(lora.num_layers, dims.layers)


def trainable_parameters(dims: ModelDims, lora: LoraConfig) -> int:
    """What `model.trainable_parameters()` holds after attach_adapters."""
    layers = adapted_layers(dims, lora)
    if lora.fine_tune_type == "full":
        return layers * dims.block_parameters
    keys = lora.target_modules or list(dims.block_linears)
    per_block = 0
    for key in keys:
        if key not in dims.block_linears:
            raise ValueError(f"lora.target_modules: {key!r} is not a linear layer of this "
                             f"model ({', '.join(dims.block_linears)})")
        fan_in, fan_out = dims.block_linears[key]
        per_block += lora.rank * (fan_in + fan_out)
        if lora.fine_tune_type == "dora":
            per_block += fan_out  # the learned magnitude vector
    return layers * per_block


def weight_bytes(dims: ModelDims, quantize_bits: int | None, group_size: int) -> float:
    """Base weights in memory. `load_model` quantizes nn.Linear layers only (not embeddings),
    each with a scale and a bias per group, stored in the weights' dtype."""
    total = dims.parameters * dims.dtype_bytes
    if quantize_bits is None:
        return total
    per_weight = quantize_bits / 8 + 2 * dims.dtype_bytes / group_size
    linear = sum(a * b for a, b in dims.block_linears.values() if a % group_size == 0)
    linear *= dims.layers
    if not dims.tied_embeddings and dims.hidden % group_size == 0:
        linear += dims.vocab * dims.hidden  # lm_head is an nn.Linear
    return total - linear * (dims.dtype_bytes - per_weight)


def memory_breakdown(dims: ModelDims, config: RunConfig, sequence: int) -> dict[str, float]:
    """Peak memory of one training step on `batch_size` rows of `sequence` tokens, in GB."""
    tc, lora = config.train, config.lora
    trainable = trainable_parameters(dims, lora)
    state_bytes = 4 if lora.fine_tune_type != "full" else dims.dtype_bytes
    optimizer_values = 2  # Adam and AdamW keep two moments per parameter
    tokens = tc.batch_size * (sequence - 1)  # the loss shifts by one: inputs are S-1 long
    act = dims.dtype_bytes
    per_block = (ACT_PER_HIDDEN * dims.hidden + ACT_PER_INTERMEDIATE * dims.intermediate
                 + ACT_PER_HEAD_POSITION * dims.heads * sequence) * act
    layers = adapted_layers(dims, lora)
    if tc.grad_checkpoint:  # each block keeps its input; one block is recomputed at a time
        activations = tokens * (layers * dims.hidden * act + per_block)
    else:
        activations = tokens * layers * per_block
    return {
        "weights": weight_bytes(dims, config.model.quantize_bits,
                                config.model.quantize_group_size) / GB,
        "adapters": trainable * state_bytes / GB,
        "gradients": trainable * state_bytes / GB,
        "optimizer": optimizer_values * trainable * 4 / GB,
        "activations": activations / GB,
        "lm_head": tokens * dims.vocab * HEAD_BYTES_PER_VOCAB / GB,
    }


def flops_per_token(dims: ModelDims, config: RunConfig, sequence: int) -> float:
    """Matmul FLOPs of one trained token: the forward pass, the backward through the head and
    the adapted blocks (the frozen ones below need none), weight gradients only when fully
    fine-tuning, and one more forward of the adapted blocks with gradient checkpointing."""
    layers = adapted_layers(dims, config.lora)
    block = 2 * sum(a * b for a, b in dims.block_linears.values())
    block += 2 * dims.heads * dims.head_dim * sequence  # QK^T and AV, half of it causal
    head = 2 * dims.vocab * dims.hidden
    forward = dims.layers * block + head
    backward = layers * block + head  # gradients of the activations cost a forward again
    if config.lora.fine_tune_type == "full":
        backward += layers * block  # weight gradients
    recompute = layers * block if config.train.grad_checkpoint else 0
    return forward + backward + recompute


def padded_length(tokens: int, max_seq_length: int) -> int:
    """Width of a batch whose longest example has `tokens` tokens (mlx-lm pads to 1 + 32k)."""
    return min(1 + 32 * ((tokens + 31) // 32), max_seq_length)


def plan_run(
    dims: ModelDims, config: RunConfig, hardware: Hardware, data: DataStats | None = None,
    tokens_per_second: float | None = None, watts: float | None = None,
    price_per_kwh: float = 0.30,
) -> Plan:
    """Everything `lorascope plan` prints, for one model, config and machine."""
    tc, notes = config.train, []
    if data is not None:
        sequence = padded_length(data.longest_tokens, config.data.max_seq_length)
        tokens_per_step = tc.batch_size * min(data.mean_tokens, config.data.max_seq_length)
        steps_per_epoch: int | None = data.examples // tc.batch_size
    else:
        sequence = config.data.max_seq_length
        tokens_per_step = float(tc.batch_size * sequence)
        steps_per_epoch = None
        notes.append("no training data read: sequences assumed max_seq_length long")
    per_token = flops_per_token(dims, config, sequence)
    rate = tokens_per_second or hardware.train_flops / per_token
    seconds_per_step = tokens_per_step / rate
    seconds_per_epoch = steps_per_epoch * seconds_per_step if steps_per_epoch else None
    seconds_for_run = tc.iters * seconds_per_step
    energy_kwh = (watts or hardware.watts) * seconds_for_run / 3.6e6
    return Plan(
        trainable_parameters=trainable_parameters(dims, config.lora),
        total_parameters=dims.parameters,
        memory_gb=memory_breakdown(dims, config, sequence),
        sequence_length=sequence, tokens_per_step=tokens_per_step,
        steps_per_epoch=steps_per_epoch, flops_per_token=per_token, tokens_per_second=rate,
        seconds_per_epoch=seconds_per_epoch, seconds_for_run=seconds_for_run,
        energy_kwh=energy_kwh, cost=energy_kwh * price_per_kwh, hardware=hardware, notes=notes,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: Plan, config: RunConfig) -> str:
    tc = config.train
    lines = [
        f"parameters        {plan.total_parameters / 1e6:,.1f} M, trainable "
        f"{plan.trainable_parameters / 1e6:,.3f} M "
        f"({100 * plan.trainable_parameters / plan.total_parameters:.2f} %)",
        f"peak memory       {plan.peak_memory_gb:.2f} GB  (batch {tc.batch_size} x "
        f"{plan.sequence_length} tokens, grad_checkpoint {tc.grad_checkpoint})",
    ]
    lines += [f"  {name:<16}{gb:8.3f} GB" for name, gb in plan.memory_gb.items()]
    lines += [
        f"tokens per step   {plan.tokens_per_step:,.0f}",
        f"steps per epoch   {plan.steps_per_epoch if plan.steps_per_epoch else 'unknown'}",
        f"speed             {plan.tokens_per_second:,.0f} tok/s on {plan.hardware.name} "
        f"({plan.flops_per_token / 1e9:.2f} GFLOP/token)",
        f"time per epoch    "
        f"{_duration(plan.seconds_per_epoch) if plan.seconds_per_epoch else 'unknown'}",
        f"time for run      {_duration(plan.seconds_for_run)} ({tc.iters} steps)",
        f"energy, cost      {plan.energy_kwh:.3f} kWh, {plan.cost:.3f} at the given price",
    ]
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


# ---------------------------------------------------------------- inputs (file I/O)


def model_dims_for(source: str, home: Any = None) -> ModelDims:
    """From the model folder's config.json; Hub ids not on this machine from KNOWN_CONFIGS."""
    import json

    from lorascope.models.loader import resolve_model

    if source in KNOWN_CONFIGS:
        return dims_from_config(KNOWN_CONFIGS[source])
    return dims_from_config(json.loads((resolve_model(source, home) / "config.json").read_text()))


def data_stats_for(config: RunConfig, home: Any = None) -> DataStats | None:
    """Token counts of the training data, tokenized exactly as training will; None when the
    model's tokenizer is not on this machine (a Hub model, offline)."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.records import UNSPLIT
    from lorascope.data.rules import token_counts
    from lorascope.data.sources import read_source
    from lorascope.models.chat import ensure_chat_template
    from lorascope.models.loader import ModelSourceError, resolve_model

    try:
        model_path = resolve_model(config.model.source, home)
    except ModelSourceError:
        return None
    tokenizer = ensure_chat_template(load_tokenizer(model_path), config.model.chat_template)
    splits = read_source(resolve_data_source(config.data.source, home), config.data.columns)
    # An unsplit source is counted whole (its valid/test share is left in: a slight overcount).
    train = splits.get("train") or splits[UNSPLIT]
    lengths = token_counts(tokenizer, train)
    return DataStats(len(lengths), sum(lengths) / len(lengths), max(lengths))
