"""Memory, time, energy and money of LoRA, QLoRA and full fine-tuning on the machines people
have, against a hosted fine-tuning API: `lorascope plan CONFIG --compare-methods`.

Every number comes from the planner (`planner.plan_run`) for one config, varied only in its
method; docs/economics.md quotes the printed Markdown verbatim and
tests/test_economics_doc.py checks that it still matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from lorascope.config import RunConfig, parse_config
from lorascope.training.planner import (
    HARDWARE,
    DataStats,
    ModelDims,
    Plan,
    attended_keys,
    duration,
    flops_per_token,
    plan_run,
    streamed_weight_bytes,
    trained_state_bytes,
)

_FULL = {"model": {"quantize_bits": None}, "lora": {"fine_tune_type": "full", "num_layers": -1}}
# name: (label, config overrides by section, mixed precision)
METHODS: dict[str, tuple[str, dict[str, dict], bool]] = {
    "lora": ("LoRA, 16-bit base", {"model": {"quantize_bits": None}}, False),
    "qlora": ("QLoRA, 4-bit base", {"model": {"quantize_bits": 4}}, False),
    "full": ("full, mlx-lm", _FULL, False),
    "full-mixed": ("full, mixed precision", _FULL, True),
}
# Apple-silicon Macs are sold with these unified-memory sizes (M1 ... M4 families).
MAC_MEMORY_GB = (16, 24, 32, 36, 48, 64, 96, 128, 192)
# macOS lets the GPU wire about 3/4 of unified memory by default (Metal's
# recommendedMaxWorkingSetSize: 11.84 of 16 GB on an M3, AlexsJones/llmfit#754; "75% of total
# RAM", gpustack/gpustack#1375); `sudo sysctl iogpu.wired_limit_mb=N` raises it.
USABLE_MEMORY_FRACTION = 0.75
# An example, not a current price: Ori's fine-tuning billing page (docs.ori.co/fine-tuning/
# billing), "Up to 10B parameters ... $0.46 per 1M tokens", LoRA, tokens summed over epochs;
# read 2026-12-02 from a stored copy of the page. Pass your provider's with --api-price-per-mtok.
API_PRICE_PER_MTOK = 0.46
MACHINES = ("m4", "m4-pro", "m4-max", "m1-max", "m2-ultra", "linux-cpu-2core")
# The memory each profiled chip is sold with (Apple's configurations of these GPU variants; not
# checkable offline here: check your own machine's). The Linux box: its 25 GB (24,683,584 kB).
MEMORY_OPTIONS_GB = {"m4": (16, 24, 32), "m4-pro": (24, 48, 64), "m4-max": (48, 64, 128),
                     "m1-max": (32, 64), "m2-ultra": (64, 128, 192), "linux-cpu-2core": (25,)}
WORKED_MACHINE = "m4-max"  # the machine the shipped configs' headers quote


@dataclass(frozen=True)
class Dataset:
    examples: int = 10_000
    tokens_per_example: int = 512
    epochs: int = 3

    @property
    def tokens(self) -> int:
        return self.examples * self.tokens_per_example * self.epochs


def method_config(config: RunConfig, method: str, dataset: Dataset) -> RunConfig:
    """`config` with the method's changes, training `dataset.epochs` epochs."""
    values = config.model_dump()
    steps = dataset.epochs * (dataset.examples // config.train.batch_size)
    for section, changes in {**METHODS[method][1], "train": {"iters": steps}}.items():
        values[section] = {**values[section], **changes}
    return parse_config(values, origin=f"{config.name} ({method})")


def compare(dims: ModelDims, config: RunConfig, dataset: Dataset, price_per_kwh: float,
            machines: tuple[str, ...] = MACHINES) -> dict[tuple[str, str], Plan]:
    """(method, machine) -> the plan for the whole dataset."""
    data = DataStats(dataset.examples, dataset.tokens_per_example, dataset.tokens_per_example)
    plans = {}
    for method, (_, _, mixed) in METHODS.items():
        run = method_config(config, method, dataset)
        for machine in machines:
            plans[method, machine] = plan_run(dims, run, HARDWARE[machine], data,
                                              price_per_kwh=price_per_kwh,
                                              mixed_precision=mixed)
    return plans


def usable_gb(memory_gb: float) -> float:
    return memory_gb * USABLE_MEMORY_FRACTION


def smallest_fit(machine: str, peak_gb: float) -> str:
    options = MEMORY_OPTIONS_GB.get(machine, ())
    fits = [size for size in options if peak_gb <= usable_gb(size)]
    return f"{fits[0]} GB" if fits else f"none (at most {max(options, default=0)} GB)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def format_comparison(dims: ModelDims, config: RunConfig, dataset: Dataset,
                      plans: dict[tuple[str, str], Plan], price_per_kwh: float,
                      api_price_per_mtok: float) -> str:
    """The chapter's inputs, tables and worked example, as Markdown."""
    machines = list(dict.fromkeys(machine for _, machine in plans))
    first = {method: plans[method, machines[0]] for method in METHODS}
    worked = WORKED_MACHINE if WORKED_MACHINE in machines else machines[0]
    return "\n".join([
        *inputs(dims, config, dataset, first["lora"], price_per_kwh, api_price_per_mtok), "",
        *memory_table(dims, config, dataset, first), "",
        *fit_table(first), "",
        *time_table(plans, machines), "",
        *_table(["hosted fine-tuning API", "trained tokens", "$ per 1M tokens", "cost $"],
                [["billed per trained token", f"{dataset.tokens:,}",
                  f"{api_price_per_mtok:.2f}",
                  f"{dataset.tokens / 1e6 * api_price_per_mtok:.2f}"]]), "",
        *worked_example(dims, config, dataset, plans["lora", worked], price_per_kwh),
    ])


def inputs(dims: ModelDims, config: RunConfig, dataset: Dataset, lora_plan: Plan,
           price_per_kwh: float, api_price_per_mtok: float) -> list[str]:
    lora, steps = config.lora, dataset.epochs * (lora_plan.steps_per_epoch or 0)
    adapted = "all" if lora.num_layers < 0 else f"the last {lora.num_layers} of"
    return [
        f"- model: {config.model.source}, {dims.parameters / 1e6:,.1f} M parameters at "
        f"{dims.dtype_bytes} bytes each",
        f"- run: batch {config.train.batch_size} x {lora_plan.sequence_length} tokens, "
        f"grad_checkpoint {config.train.grad_checkpoint}; (Q)LoRA rank {lora.rank} on "
        f"{adapted} {dims.layers} blocks; full fine-tuning trains all {dims.layers} blocks",
        f"- data: {dataset.examples:,} examples x {dataset.tokens_per_example:,} tokens x "
        f"{dataset.epochs} epochs = {dataset.tokens:,} trained tokens = "
        f"{steps:,} steps of {lora_plan.tokens_per_step:,.0f} tokens",
        f"- prices: electricity {price_per_kwh:.2f} $/kWh, hosted API "
        f"{api_price_per_mtok:.2f} $ per 1M training tokens (examples: pass your own)",
    ]


def memory_table(dims: ModelDims, config: RunConfig, dataset: Dataset,
                 plans: dict[str, Plan]) -> list[str]:
    rows = []
    for method, plan in plans.items():
        memory = plan.memory_gb
        lora = method_config(config, method, dataset).lora
        state = sum(trained_state_bytes(dims, lora, METHODS[method][2]).values())
        rows.append([
            METHODS[method][0], f"{plan.trainable_parameters / 1e6:,.1f} M",
            f"{memory['weights']:.2f}",
            *(f"{memory[part]:.2f}" if part in memory else "–"
              for part in ("adapters", "master weights", "gradients", "optimizer")),
            f"{state / plan.trainable_parameters:.0f}", f"{memory['activations']:.2f}",
            f"{memory['lm_head']:.2f}", f"**{plan.peak_memory_gb:.2f}**"])
    return _table(["method", "trained parameters", "weights GB", "adapters GB",
                   "master weights GB", "gradients GB", "Adam moments GB",
                   "bytes per trained parameter beyond the weights", "activations GB",
                   "LM head GB", "peak GB"], rows)


def fit_table(plans: dict[str, Plan]) -> list[str]:
    usable = f"usable ({100 * USABLE_MEMORY_FRACTION:.0f} %)"
    return _table(["Mac memory", usable, *(METHODS[method][0] for method in plans)], [
        [f"{size} GB", f"{usable_gb(size):.0f} GB",
         *("fits" if plan.peak_memory_gb <= usable_gb(size) else "no"
           for plan in plans.values())] for size in MAC_MEMORY_GB])


def time_table(plans: dict[tuple[str, str], Plan], machines: list[str]) -> list[str]:
    rows = []
    for machine in machines:
        for method in METHODS:
            plan = plans[method, machine]
            rows.append([plan.hardware.name, METHODS[method][0],
                         smallest_fit(machine, plan.peak_memory_gb),
                         f"{plan.tokens_per_second:,.0f}", duration(plan.seconds_for_run),
                         f"{plan.energy_kwh:.2f}", f"{plan.cost:.2f}"])
    return _table(["machine", "method", "smallest memory that fits", "tok/s", "time",
                   "energy kWh", "electricity $"], rows)


def worked_example(dims: ModelDims, config: RunConfig, dataset: Dataset, plan: Plan,
                   price_per_kwh: float) -> list[str]:
    """One cell of the time table, step by step."""
    hw = plan.hardware
    run = method_config(config, "lora", dataset)
    flops = flops_per_token(dims, run, attended_keys(dims, hw, plan.sequence_length))
    compute_ms = 1e3 * flops / hw.matmul_flops
    stream_ms = 1e3 * streamed_weight_bytes(dims, run) / plan.tokens_per_step / hw.bandwidth
    matmul_ms = max(compute_ms, stream_ms)
    elementwise_ms = 1e3 * plan.elementwise_per_token * hw.seconds_per_value
    return [
        f"Worked: LoRA on {hw.name}, one step of {plan.tokens_per_step:,.0f} tokens",
        "```",
        f"FLOPs per token     {flops / 1e9:.2f} GFLOP",
        f"matrix products     {flops / 1e9:.2f} GFLOP / {hw.matmul_flops / 1e12:.2f} TFLOP/s "
        f"= {compute_ms:.3f} ms per token",
        f"weights streamed    {streamed_weight_bytes(dims, run) / 1e9:.2f} GB per step / "
        f"{hw.bandwidth / 1e9:.0f} GB/s / {plan.tokens_per_step:,.0f} tokens = "
        f"{stream_ms:.3f} ms per token (the slower of the two counts: {matmul_ms:.3f} ms)",
        f"elementwise         {plan.elementwise_per_token:,.0f} values x "
        f"{hw.seconds_per_value * 1e12:.2f} ps = {elementwise_ms:.3f} ms per token",
        f"speed               1 / ({matmul_ms:.3f} + {elementwise_ms:.3f}) ms = "
        f"{plan.tokens_per_second:,.0f} tok/s",
        f"time                {dataset.tokens:,} tokens / {plan.tokens_per_second:,.0f} tok/s "
        f"= {plan.seconds_for_run / 3600:.2f} h",
        f"energy              {hw.watts:.0f} W x {plan.seconds_for_run / 3600:.2f} h = "
        f"{plan.energy_kwh:.3f} kWh",
        f"electricity         {plan.energy_kwh:.3f} kWh x {price_per_kwh:.2f} "
        f"$/kWh = {plan.cost:.3f} $",
        "```",
    ]
