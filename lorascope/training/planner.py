"""Predict a training run's cost before it runs: parameters, peak memory, time, energy.

Pure functions over the model's dimensions (its config.json) and the run config. The memory
model counts what MLX holds at the peak of a LoRA step: the base weights at their stored
dtype or quantization, the adapters with their gradients and Adam moments, and the
activations kept for the backward pass. Its per-token coefficients were measured on this
machine with `mx.get_peak_memory()` (tiny-mistral and smollm2-135m, batch 1-4, sequence
128-512, with and without gradient checkpointing; all within 2 %) and are checked by
tests/test_planner.py. Time per step is a roofline over the matrix products (FLOPs at the
hardware's matmul rate, or the weights streamed at its memory bandwidth, whichever is slower)
plus the elementwise work (exp, sigmoid, ... per activation value), which on MLX's CPU backend
is scalar and costs as much as the matrix products of a narrow model (docs/training.md).
With the training data, the plan builds the epoch's batches as the trainer does (padded to
train.pad_to_multiple, or packed rows) and costs each step on its own batch: the positions it
computes, padding included, at its width, and the output head (vocabulary projection and
log-softmax) only at the targets the loss counts where the model's code lets the loss compute
logits there alone (`models.heads`), at every computed position otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
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
    model_type: str = ""  # config.json's: which of mlx-lm's model modules runs the model

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
        model_type=config.get("model_type", ""),
    )


def model_code(dims: ModelDims) -> str:
    """The mlx-lm module whose code runs the model: its model_type through mlx-lm's
    MODEL_REMAPPING, as `mlx_lm.load` picks it."""
    from mlx_lm.utils import MODEL_REMAPPING

    return f"mlx_lm.models.{MODEL_REMAPPING.get(dims.model_type, dims.model_type)}"


def head_splits(dims: ModelDims) -> bool:
    """Whether training computes the output head only at the targets the loss counts: the
    model code is one whose head `models.heads.split_head` splits off."""
    from lorascope.models.heads import SPLIT_HEAD_MODULES

    return model_code(dims) in SPLIT_HEAD_MODULES


_MISTRAL_7B = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "head_dim": 128, "vocab_size": 32000, "tie_word_embeddings": False,
               "torch_dtype": "bfloat16"}
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
    matmul_flops: float  # effective FLOP/s of the training step's matrix products
    bandwidth: float  # bytes/s of memory reads: weights stream through once per pass
    seconds_per_value: float  # elementwise work per activation value per pass (exp, sigmoid)
    watts: float
    source: str
    machine: str | None = None  # the machine key (training.calibration) a measurement is of
    gpu: bool = False  # attention: MLX's fused GPU kernel, or its CPU ops (`attended_keys`)


def _apple(name: str, fp32_tflops: float, bandwidth_gbs: float, watts: float, source: str,
           efficiency: float) -> Hardware:
    """An Apple GPU: `efficiency` x its fp32 peak for the matrix products (measured from a
    published run), elementwise values at 4 bytes each (16-bit read and write) over the memory
    bus, where a GPU's transcendentals cost no more than a copy."""
    return Hardware(name, efficiency * fp32_tflops * 1e12, bandwidth_gbs * 1e9,
                    4 / (bandwidth_gbs * 1e9), watts,
                    f"{source}; {100 * efficiency:.0f} % of the fp32 peak; watts assumed",
                    gpu=True)


# The M1 Max's published Mistral-7B run (mlx-examples LORA.md, ~250 tok/s) reaches 39 % of its
# 10.4 TFLOPS fp32 peak; the single-die M4 chips are given the same share. The M2 Ultra's run
# (two dies) reaches 35 % of 27.2 TFLOPS. Memory bandwidth: Apple's spec pages. GPU fp32 peaks:
# Apple publishes none for M4; the figures are huggingface.js's hardware table
# (github.com/huggingface/huggingface.js/pull/1044: M4 4.6, M4 Pro 9.2, M4 Max 18.4 TFLOPS),
# the same table that gives M1 Max 10.4 (huggingface.co/hardware/apple-m1-max).
# Watts are typical wall power under a GPU load (assumed; pass --watts for your own).
M1_MAX_EFFICIENCY = 0.39
HARDWARE = {
    "m2-ultra": _apple("Apple M2 Ultra", 27.2, 800, 200.0,
                       "mlx-examples lora/README.md: Llama 7B LoRA ~475 tok/s; "
                       "apple.com/newsroom/2023/06/apple-introduces-m2-ultra/: 800GB/s",
                       efficiency=0.35),
    "m1-max": _apple("Apple M1 Max 32 GB", 10.4, 400, 90.0,
                     "mlx-examples llms/mlx_lm/LORA.md: Mistral-7B, batch 1, 4 layers, "
                     "~250 tok/s; apple.com/newsroom/2021/10/introducing-m1-pro-and-m1-max-"
                     "the-most-powerful-chips-apple-has-ever-built/: 400GB/s",
                     efficiency=M1_MAX_EFFICIENCY),
    # apple.com/newsroom/2024/05/apple-introduces-m4-chip/: 10-core GPU, 120GB/s
    "m4": _apple("Apple M4 (10-core GPU)", 4.6, 120, 40.0,
                 "apple.com/newsroom/2024/05/apple-introduces-m4-chip/: 120GB/s; "
                 "huggingface.js hardware table: 4.6 TFLOPS fp32", M1_MAX_EFFICIENCY),
    # apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/: 20-core GPU, 273GB/s
    "m4-pro": _apple("Apple M4 Pro (20-core GPU)", 9.2, 273, 70.0,
                     "apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/: "
                     "273GB/s; huggingface.js hardware table: 9.2 TFLOPS fp32",
                     M1_MAX_EFFICIENCY),
    # same page: M4 Max with the 40-core GPU, 546GB/s (the 32-core one has 410GB/s)
    "m4-max": _apple("Apple M4 Max (40-core GPU)", 18.4, 546, 120.0,
                     "apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/: "
                     "546GB/s; huggingface.js hardware table: 18.4 TFLOPS fp32",
                     M1_MAX_EFFICIENCY),
    # Measured on the 2-core box, `bench/train_throughput.py --calibrate` when it was quiet:
    # MLX float32 matrix products on OpenBLAS at the benchmark models' shapes 180-242 GFLOP/s;
    # MLX's CPU exp and sigmoid (scalar, single-threaded) 5.5-13.6 ns per value per pass with
    # their backward, taken as 12 ns to cover the elementwise ops not counted (norms, RoPE,
    # residual adds); `a + 1` over 256 MB 2.3-4.3 GB/s, never the binding term here.
    "linux-cpu-2core": Hardware("2-core x86_64, MLX CPU + OpenBLAS", 2.3e11, 4.0e9, 12e-9,
                                65.0, "measured on 2026-11-30 by bench/train_throughput.py "
                                "--calibrate; watts assumed",
                                machine="linux-x86_64-intel-xeon-processor-6-167-2cpu-"
                                "openblas-pthread"),
}


@dataclass(frozen=True)
class DataStats:
    """What the planner needs to know about the training split, in tokens. With `lengths`
    (each example's tokens) the plan builds the epoch's batches as the trainer does
    (`epoch_batches`); without, it takes every step as `batch_size` mean-length rows.
    `offsets`: where each example's answer starts (`trainer.tokenize_examples` with
    mask_prompt; 0 for text rows), which the loss counts from under train.mask_prompt; none
    given, every token is counted."""
    examples: int
    mean_tokens: float
    longest_tokens: int
    lengths: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()


@dataclass(frozen=True)
class Batch:
    """One training batch as the trainer builds it."""
    rows: int
    width: int  # tokens per row: 1 + a multiple of train.pad_to_multiple (or max_seq_length)
    examples: int
    real_tokens: int  # the examples' own tokens (truncated to max_seq_length), no padding
    targets: int  # the targets the loss counts (`counted_targets` of each example)

    @property
    def computed_tokens(self) -> int:
        """Positions the model reads: each row less its last column, a target only."""
        return self.rows * (self.width - 1)


@dataclass(frozen=True)
class Plan:
    trainable_parameters: int
    total_parameters: int
    memory_gb: dict[str, float]
    sequence_length: int  # of the batch at the peak memory
    tokens_per_step: float  # computed (padding included): what the per-token costs multiply
    steps_per_epoch: int | None
    flops_per_token: float
    elementwise_per_token: float
    tokens_per_second: float
    seconds_per_epoch: float | None
    seconds_for_run: float
    energy_kwh: float
    cost: float
    hardware: Hardware
    quantize_peak_gb: float | None = None
    notes: list[str] = field(default_factory=list)
    # From the epoch's batches (data with lengths); otherwise real = computed tokens.
    real_tokens_per_step: float | None = None
    examples_per_step: float | None = None
    seconds_per_step: float | None = None
    targets_per_step: float | None = None  # what the loss counts
    head_tokens_per_step: float | None = None  # where the output head runs (see head_tokens)
    model_code: str | None = None  # the mlx-lm module, which decides where the head runs

    @property
    def real_tokens_per_second(self) -> float:
        real = self.real_tokens_per_step or self.tokens_per_step
        return self.tokens_per_second * real / self.tokens_per_step

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


def trained_state_bytes(dims: ModelDims, lora: LoraConfig,
                        mixed_precision: bool = False) -> dict[str, float]:
    """Bytes of what training adds for the trained parameters. LoRA and DoRA weights are
    float32, with float32 gradients and two Adam moments. Fully tuned weights are the model's
    own (already in `weights`); mlx-lm keeps their gradients and MLX's Adam its two moments in
    the weights' dtype. `mixed_precision` is the usual recipe elsewhere (PyTorch AMP, ZeRO's
    accounting), not mlx-lm's: a float32 master copy and float32 moments, 16 bytes per
    parameter with the 16-bit weights and gradients."""
    trainable = trainable_parameters(dims, lora)
    full = lora.fine_tune_type == "full"
    if mixed_precision and not full:
        raise ValueError("mixed precision is a full fine-tuning recipe: fine_tune_type full")
    if mixed_precision:
        return {"master weights": 4 * trainable, "gradients": dims.dtype_bytes * trainable,
                "optimizer": 2 * 4 * trainable}
    state = dims.dtype_bytes if full else 4
    adapters = {} if full else {"adapters": state * trainable}
    # Adam and AdamW keep two moments per parameter.
    return {**adapters, "gradients": state * trainable, "optimizer": 2 * state * trainable}


def memory_breakdown(dims: ModelDims, config: RunConfig, sequence: int,
                     mixed_precision: bool = False,
                     head_tokens: float | None = None) -> dict[str, float]:
    """Peak memory of one training step on `batch_size` rows of `sequence` tokens, in GB,
    with the head's logits at `head_tokens` positions (default: every computed one)."""
    tc, lora = config.train, config.lora
    tokens = tc.batch_size * (sequence - 1)  # the loss shifts by one: inputs are S-1 long
    act = dims.dtype_bytes
    per_block = (ACT_PER_HIDDEN * dims.hidden + ACT_PER_INTERMEDIATE * dims.intermediate
                 + ACT_PER_HEAD_POSITION * dims.heads * sequence) * act
    layers = adapted_layers(dims, lora)
    if tc.grad_checkpoint:  # each block keeps its input; one block is recomputed at a time
        activations = tokens * (layers * dims.hidden * act + per_block)
    else:
        activations = tokens * layers * per_block
    states = trained_state_bytes(dims, lora, mixed_precision)
    return {
        "weights": weight_bytes(dims, config.model.quantize_bits,
                                config.model.quantize_group_size) / GB,
        **{name: value / GB for name, value in states.items()},
        "activations": activations / GB,
        "lm_head": (tokens if head_tokens is None else head_tokens) * dims.vocab
        * HEAD_BYTES_PER_VOCAB / GB,
    }


def head_flops(dims: ModelDims) -> float:
    """Matmul FLOPs of the output head at one position: the projection to the vocabulary
    forward, and backward the gradient of its input (the head itself is not trained)."""
    return 2 * 2 * dims.vocab * dims.hidden


def head_elementwise(dims: ModelDims) -> float:
    """The head's log-softmax over the vocabulary at one position, forward and backward."""
    return 2 * dims.vocab


def flops_per_token(dims: ModelDims, config: RunConfig, keys: float,
                    head: bool = True) -> float:
    """Matmul FLOPs of one trained token: the forward pass, the backward through the head and
    the adapted blocks (the frozen ones below need none), weight gradients only when fully
    fine-tuning, and one more forward of the adapted blocks with gradient checkpointing.
    `keys`: the keys its attention scores (`attended_keys`). `head=False` leaves out the
    head's share (`head_flops`), for positions it does not run at."""
    layers = adapted_layers(dims, config.lora)
    block = 2 * sum(a * b for a, b in dims.block_linears.values())
    block += 4 * dims.heads * dims.head_dim * keys  # QK^T and AV
    forward = dims.layers * block
    backward = layers * block  # gradients of the activations cost a forward again
    if config.lora.fine_tune_type == "full":
        backward += layers * block  # weight gradients
    recompute = layers * block if config.train.grad_checkpoint else 0
    return forward + backward + recompute + (head_flops(dims) if head else 0)


def elementwise_per_token(dims: ModelDims, config: RunConfig, keys: float,
                          head: bool = True) -> float:
    """Activation values that pass through a transcendental (exp, sigmoid) per trained token,
    counted once per pass over a block: the MLP's SiLU (intermediate values) and the attention
    softmax (heads x the keys each query scores, `attended_keys`); the head's log-softmax over
    the vocabulary, forward and backward (`head_elementwise`; left out with `head=False`). A
    block's backward touches the same values again, as its forward does."""
    layers = adapted_layers(dims, config.lora)
    passes = dims.layers + layers + (layers if config.train.grad_checkpoint else 0)
    values = passes * (dims.intermediate + dims.heads * keys)
    return values + (head_elementwise(dims) if head else 0)


def streamed_weight_bytes(dims: ModelDims, config: RunConfig) -> float:
    """Weight bytes read per step: every block forward, the adapted ones again backward (and
    once more with gradient checkpointing), the head forward and backward."""
    bits, group = config.model.quantize_bits, config.model.quantize_group_size
    per_weight = dims.dtype_bytes if bits is None else bits / 8 + 2 * dims.dtype_bytes / group
    layers = adapted_layers(dims, config.lora)
    passes = dims.layers + layers + (layers if config.train.grad_checkpoint else 0)
    return (passes * dims.block_parameters + 2 * dims.vocab * dims.hidden) * per_weight


def quantize_peak_bytes(dims: ModelDims, bits: int, group_size: int) -> float:
    """Peak of quantizing once (`models.loader.quantized_base`): the quantized model plus one
    full-precision matrix, the largest, being quantized (weights are read one at a time)."""
    largest = max(dims.vocab * dims.hidden, dims.hidden * dims.intermediate)
    return weight_bytes(dims, bits, group_size) + largest * dims.dtype_bytes


def seconds_per_step(dims: ModelDims, config: RunConfig, hardware: Hardware, sequence: int,
                     tokens_per_step: float, head_tokens: float | None = None) -> float:
    """Matrix products at the slower of compute and weight streaming, plus elementwise work,
    for rows of `sequence` positions, with the output head at `head_tokens` positions
    (default: at every computed one)."""
    keys = attended_keys(dims, hardware, sequence)
    if head_tokens is None:
        flops = tokens_per_step * flops_per_token(dims, config, keys)
        elementwise = tokens_per_step * elementwise_per_token(dims, config, keys)
    else:
        flops = (tokens_per_step * flops_per_token(dims, config, keys, head=False)
                 + head_tokens * head_flops(dims))
        elementwise = (tokens_per_step * elementwise_per_token(dims, config, keys, False)
                       + head_tokens * head_elementwise(dims))
    matmul = max(flops / hardware.matmul_flops,
                 streamed_weight_bytes(dims, config) / hardware.bandwidth)
    return matmul + elementwise * hardware.seconds_per_value


def padded_length(tokens: int, max_seq_length: int, multiple: int = 32) -> int:
    """Width of a batch whose longest example has `tokens` tokens: 1 + a multiple of
    `train.pad_to_multiple` (mlx-lm's batches: 32)."""
    return min(1 + multiple * ((tokens + multiple - 1) // multiple), max_seq_length)


def counted_targets(length: int, offset: int, max_seq_length: int) -> int:
    """Targets mlx-lm's default_loss counts for one example, unpacked or packed alike: from
    its offset (at least its second token) to one past its end, within max_seq_length."""
    return max(0, min(length, max_seq_length - 1) - max(offset, 1) + 1)


def epoch_batches(lengths: Sequence[int], config: RunConfig,
                  offsets: Sequence[int] = ()) -> list[Batch]:
    """An epoch's training batches by the trainer's own rules: groups of `batch_size`
    length-sorted examples padded to 1 + a multiple of train.pad_to_multiple
    (`trainer.collate`), or with train.pack its packed rows (`batching.packed_batches`, as
    wide as `collate_packed` makes them). Each epoch shuffles whole batches, never their rows.
    `offsets` (DataStats.offsets) count from each answer under train.mask_prompt."""
    from lorascope.training.batching import packed_batches, packed_width, slot_length
    from lorascope.training.trainer import TrainingError, length_sorted_batches

    tc, limit = config.train, config.data.max_seq_length
    pad, real = tc.pad_to_multiple, [min(n, limit) for n in lengths]
    starts = offsets if offsets and tc.mask_prompt else [0] * len(lengths)
    targets = [counted_targets(n, start, limit) for n, start in zip(lengths, starts, strict=True)]
    if not tc.pack:
        return [Batch(len(rows), padded_length(max(real[i] for i in rows), limit, pad),
                      len(rows), sum(real[i] for i in rows), sum(targets[i] for i in rows))
                for rows in length_sorted_batches(lengths, tc.batch_size)]
    batches = []
    for rows in packed_batches(lengths, tc.batch_size, limit, pad):
        fills = [sum(slot_length(lengths[i], limit) for i in row) for row in rows]
        members = [i for row in rows for i in row]
        batches.append(Batch(len(rows), packed_width(fills, limit, pad), len(members),
                             sum(real[i] for i in members), sum(targets[i] for i in members)))
    if not batches:
        raise TrainingError(f"{len(lengths)} examples fill fewer than batch_size="
                            f"{tc.batch_size} packed rows")
    return batches


def attended_keys(dims: ModelDims, hardware: Hardware, sequence: int) -> float:
    """Keys each query's attention is scored against, on average, in rows of `sequence`
    positions. MLX's fused GPU kernel skips the blocks above the diagonal: half the row.
    On CPU, MLX scores the whole square and masks it, unless training runs attention in
    query chunks (`models.chunked_attention`, on the model code it hooks)."""
    from lorascope.models.chunked_attention import CHUNKABLE_MODULES, keys_per_query

    if hardware.gpu:
        return sequence / 2
    if model_code(dims) in CHUNKABLE_MODULES:
        return keys_per_query(sequence)
    return float(sequence)


def head_tokens(batch: Batch, splits: bool) -> int:
    """Positions the output head runs at in a step: the counted targets rounded up as
    `trainer.target_loss` gathers them (`heads.bucket`) where the head splits off, every
    computed position where the model code keeps mlx-lm's default_loss."""
    from lorascope.models.heads import bucket

    return bucket(batch.targets) if splits else batch.computed_tokens


def plan_run(
    dims: ModelDims, config: RunConfig, hardware: Hardware, data: DataStats | None = None,
    tokens_per_second: float | None = None, watts: float | None = None,
    price_per_kwh: float = 0.30, mixed_precision: bool = False,
) -> Plan:
    """Everything `lorascope plan` prints, for one model, config and machine.
    `mixed_precision`: full fine-tuning with float32 master weights and moments (not mlx-lm's
    way; see trained_state_bytes). A given `tokens_per_second` is of real tokens. A packed
    config on model code that cannot pack is refused as training would refuse it."""
    from lorascope.training.batching import packable_code

    tc, notes, batching = config.train, [], {}
    if tc.pack and (reason := packable_code(model_code(dims))) is not None:
        from lorascope.training.trainer import TrainingError

        raise TrainingError(f"{reason}: set train.pack: false")
    batches = (epoch_batches(data.lengths, config, data.offsets)
               if data is not None and data.lengths else [])
    steps_per_epoch: int | None
    if tokens_per_second:
        notes.append("speed as given (--tokens-per-second), not from the constants")
    if batches:  # each step costs its own batch's computed tokens at its width
        from lorascope.training.trainer import batch_schedule

        code, splits = model_code(dims), head_splits(dims)
        heads = [head_tokens(b, splits) for b in batches]
        step_seconds = [b.real_tokens / tokens_per_second if tokens_per_second else
                        seconds_per_step(dims, config, hardware, b.width, b.computed_tokens,
                                         head)
                        for b, head in zip(batches, heads, strict=True)]
        steps_per_epoch, seconds_per_epoch = len(batches), sum(step_seconds)
        tokens_per_step = sum(b.computed_tokens for b in batches) / steps_per_epoch
        rate = tokens_per_step * steps_per_epoch / seconds_per_epoch
        # the steps of the run, in the trainer's seeded order of batches
        schedule = islice(batch_schedule(steps_per_epoch, config.seed, 0), tc.iters)
        seconds_for_run = sum(step_seconds[i] for i in schedule)
        # the peak: the batch whose activations and logits together weigh most (the widest,
        # unless a narrower one has more loss targets)
        widest = max(b.width for b in batches)
        sequence, memory = max(
            ((b.width, memory_breakdown(dims, config, b.width, mixed_precision, head))
             for b, head in zip(batches, heads, strict=True)),
            key=lambda peak: (sum(peak[1].values()), peak[0]))
        batching = {
            "real_tokens_per_step": sum(b.real_tokens for b in batches) / steps_per_epoch,
            "examples_per_step": sum(b.examples for b in batches) / steps_per_epoch,
            "seconds_per_step": seconds_per_epoch / steps_per_epoch,
            "targets_per_step": sum(b.targets for b in batches) / steps_per_epoch,
            "head_tokens_per_step": sum(heads) / steps_per_epoch,
            "model_code": code,
        }
    else:
        if data is not None:  # summary figures only: batch_size rows of the mean length
            sequence = padded_length(data.longest_tokens, config.data.max_seq_length,
                                     tc.pad_to_multiple)
            tokens_per_step = tc.batch_size * min(data.mean_tokens, config.data.max_seq_length)
            steps_per_epoch = data.examples // tc.batch_size
        else:
            sequence = config.data.max_seq_length
            tokens_per_step = float(tc.batch_size * sequence)
            steps_per_epoch = None
            notes.append("no training data read: sequences assumed max_seq_length long, "
                         "every position a loss target (the output head charged at each)")
        rate = tokens_per_second or tokens_per_step / seconds_per_step(
            dims, config, hardware, sequence, tokens_per_step)
        step = tokens_per_step / rate
        seconds_per_epoch = steps_per_epoch * step if steps_per_epoch else None
        seconds_for_run = tc.iters * step
        memory, widest = memory_breakdown(dims, config, sequence, mixed_precision), sequence
    model = config.model
    quantize_peak = (quantize_peak_bytes(dims, model.quantize_bits, model.quantize_group_size)
                     / GB if model.quantize_bits is not None else None)
    energy_kwh = (watts or hardware.watts) * seconds_for_run / 3.6e6
    return Plan(
        trainable_parameters=trainable_parameters(dims, config.lora),
        total_parameters=dims.parameters,
        memory_gb=memory,
        sequence_length=sequence, tokens_per_step=tokens_per_step,
        steps_per_epoch=steps_per_epoch,
        flops_per_token=flops_per_token(dims, config, attended_keys(dims, hardware, widest)),
        elementwise_per_token=elementwise_per_token(
            dims, config, attended_keys(dims, hardware, widest)),
        tokens_per_second=rate, seconds_per_epoch=seconds_per_epoch,
        seconds_for_run=seconds_for_run, energy_kwh=energy_kwh,
        cost=energy_kwh * price_per_kwh, hardware=hardware, quantize_peak_gb=quantize_peak,
        notes=notes, **batching,
    )


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def step_duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 120 else duration(seconds)


def describe_constants(hardware: Hardware) -> str:
    flops = hardware.matmul_flops
    rate = f"{flops / 1e12:.2f} TFLOP/s" if flops >= 1e12 else f"{flops / 1e9:.0f} GFLOP/s"
    return (f"matmul {rate}, memory {hardware.bandwidth / 1e9:,.1f} GB/s, elementwise "
            f"{hardware.seconds_per_value * 1e9:.3g} ns/value, {hardware.watts:.0f} W")


def head_at(plan: Plan) -> str:
    from lorascope.models.heads import SPLIT_HEAD_MODULES

    if plan.model_code in SPLIT_HEAD_MODULES:
        return f"the output head at {plan.head_tokens_per_step:,.0f} (bucketed)"
    return f"the output head at every computed position ({plan.model_code} keeps it whole)"


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
    if plan.quantize_peak_gb is not None:
        lines.append(f"quantize once     {plan.quantize_peak_gb:.2f} GB peak (to "
                     f"{config.model.quantize_bits} bits, into $LORASCOPE_HOME/models/)")
    if plan.real_tokens_per_step is None:
        lines += [
            f"tokens per step   {plan.tokens_per_step:,.0f}",
            f"steps per epoch   {plan.steps_per_epoch if plan.steps_per_epoch else 'unknown'}",
            f"speed             {plan.tokens_per_second:,.0f} tok/s on {plan.hardware.name} "
            f"({plan.flops_per_token / 1e9:.2f} GFLOP/token)",
        ]
    else:  # from the epoch's batches
        padding = 1 - plan.real_tokens_per_step / plan.tokens_per_step
        rows = "rows, packed" if tc.pack else "rows, one example each"
        lines += [
            f"tokens per step   {plan.tokens_per_step:,.0f} computed, "
            f"{plan.real_tokens_per_step:,.0f} real ({100 * padding:.1f} % padding; "
            f"batches padded to 1 + k x {tc.pad_to_multiple})",
            f"loss targets      {plan.targets_per_step:,.0f} per step "
            f"({100 * plan.targets_per_step / plan.tokens_per_step:.0f} % of computed; "
            f"{'prompts masked' if tc.mask_prompt else 'mask_prompt off'}), {head_at(plan)}",
            f"examples per step {plan.examples_per_step:.1f} ({tc.batch_size} {rows})",
            f"steps per epoch   {plan.steps_per_epoch}",
            f"speed             {plan.real_tokens_per_second:,.0f} real tok/s, "
            f"{plan.tokens_per_second:,.0f} computed tok/s on {plan.hardware.name} "
            f"({plan.flops_per_token / 1e9:.2f} GFLOP/token at the widest batch)",
            f"time per step     {step_duration(plan.seconds_per_step)} (mean over an epoch)",
        ]
    lines += [
        f"constants         {describe_constants(plan.hardware)}",
        f"  from            {plan.hardware.source}",
        f"time per epoch    "
        f"{duration(plan.seconds_per_epoch) if plan.seconds_per_epoch else 'unknown'}",
        f"time for run      {duration(plan.seconds_for_run)} ({tc.iters} steps)",
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
    folder = resolve_model(source, home, weights=False)
    return dims_from_config(json.loads((folder / "config.json").read_text()))


def data_stats_for(config: RunConfig, home: Any = None) -> DataStats | None:
    """Token counts of the training split as the run prepares it (deduplicated, split,
    over-long rows dropped per data.over_length) and tokenized exactly as training will, with
    where each answer starts (the loss counts from there under train.mask_prompt); None
    when the model's tokenizer is not on this machine (a Hub model, offline)."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.prepare import prepare_splits
    from lorascope.data.records import DataError
    from lorascope.data.rules import token_counts
    from lorascope.data.sources import read_source
    from lorascope.models.chat import ensure_chat_template
    from lorascope.models.loader import ModelSourceError, resolve_model
    from lorascope.training.trainer import tokenize_examples

    try:
        model_path = resolve_model(config.model.source, home, weights=False)
    except ModelSourceError:
        return None
    tokenizer = ensure_chat_template(load_tokenizer(model_path), config.model.chat_template)
    location = resolve_data_source(config.data.source, home)
    source = read_source(location, config.data.columns)
    splits, _ = prepare_splits(config.data, source, lambda rows: token_counts(tokenizer, rows))
    if not splits.get("train"):
        raise DataError(str(location), None, "no train rows left after preparation")
    examples = tokenize_examples(splits["train"], tokenizer, mask_prompt=True)
    lengths = tuple(len(ids) for ids, _ in examples)
    return DataStats(len(lengths), sum(lengths) / len(lengths), max(lengths), lengths,
                     tuple(offset for _, offset in examples))
