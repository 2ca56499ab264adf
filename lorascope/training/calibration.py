"""The planner's constants for this machine: a built-in profile when this machine has one,
else measured once and kept in `$LORASCOPE_HOME/machines/<key>.json`.

A profile belongs to a machine key: platform, architecture, CPU model, logical cores and the
BLAS a training run would load (`supervisor.child_environment`). Apple chips with a spec-sheet
profile in `planner.HARDWARE` use it; the built-in `linux-cpu-2core` belongs to the 2-core box
it was measured on. Any other machine is measured, never given another machine's constants: a
second 2-core Linux box planned with this box's constants was predicted at 198 tok/s and ran
at 119 (issue 19). The measurement runs in a child process started as training starts its own,
so it runs on the BLAS training will use: MLX matrix products at transformer shapes, MLX's
SiLU and cross-entropy with their backward (the elementwise work the planner counts per
value), and a copy for memory bandwidth.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lorascope.training.planner import HARDWARE, Hardware

# Products at the shapes of a 7B model's blocks (hidden 4096, MLP width 14336 scaled down so a
# measurement takes seconds): the rate BLAS reaches at these sizes is the one training sees.
MATMUL_SHAPES = ((1024, 1024), (1024, 4096), (4096, 1024))
MLP_WIDTH, VOCABULARY = 4096, 32000
# The planner's elementwise term counts SiLU and softmax values only; norms, RoPE and residual
# adds come on top. On the 2-core box the measured 10 ns per value was taken as 12 ns
# (docs/training.md, "Time, energy, cost"): the same share is added to a measurement here.
ELEMENTWISE_COVERAGE = 1.2
# Nothing measures wall power from here: an assumed figure, stated as such (pass --watts).
ASSUMED_WATTS = 65.0


@dataclass(frozen=True)
class Budget:
    """How much work one calibration does: rows of each product, timed repeats, copy size."""
    tokens: int = 512
    repeats: int = 5
    copy_mb: int = 256


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)", "", text.lower())
    return re.sub(r"[^a-z0-9_]+", "-", text).strip("-")


def _cpu_model() -> str:
    if sys.platform == "darwin":
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                              capture_output=True, text=True).stdout.strip()
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else []):
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    # Virtual machines often report a generic name ("Intel(R) Xeon(R) Processor"): the family
    # and model numbers tell such CPUs apart.
    ids = "-".join(fields[k] for k in ("cpu family", "model") if k in fields)
    return " ".join(filter(None, [fields.get("model name", platform.processor()), ids]))


def training_environment() -> dict[str, str]:
    """The environment a training child starts with (its BLAS preload included)."""
    from lorascope.training.supervisor import child_environment

    return child_environment()


def _blas_name(env: dict[str, str]) -> str:
    if sys.platform == "darwin":
        return "accelerate-metal"
    blas = [Path(p) for p in env.get("LD_PRELOAD", "").split(":") if "blas" in p.lower()]
    if not blas:
        return "reference-blas"
    parent = blas[0].parent.name
    return parent if "blas" in parent.lower() else blas[0].name.split(".so")[0]


def machine_key(env: dict[str, str] | None = None) -> str:
    """e.g. linux-x86_64-intel-xeon-processor-6-167-2cpu-openblas-pthread"""
    env = training_environment() if env is None else env
    return _slug(f"{sys.platform}-{platform.machine()}-{_cpu_model()}-{os.cpu_count()}cpu-"
                 f"{_blas_name(env)}")


def profile_path(home: Path, key: str) -> Path:
    return home / "machines" / f"{key}.json"


def builtin_profile(key: str) -> Hardware | None:
    """A profile measured or specified elsewhere for exactly this machine, if there is one."""
    if sys.platform == "darwin":  # an Apple chip with a spec-sheet profile, e.g. "Apple M4 Max"
        chip = _slug(_cpu_model()).removeprefix("apple-")
        if chip in HARDWARE:
            return HARDWARE[chip]
    return next((hw for hw in HARDWARE.values() if hw.machine == key), None)


# ---------------------------------------------------------------- measuring (child process)


def _timed(function: Any, repeats: int) -> float:
    """Median seconds of `function()` evaluated, after one warm-up run."""
    import mlx.core as mx

    mx.eval(function())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(function())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(budget: Budget) -> dict[str, float]:
    """The micro-benchmark, in this process: matmul FLOP/s, seconds per elementwise value per
    pass (forward and backward together count as two passes), copy bandwidth."""
    import mlx.core as mx
    import mlx.nn as nn

    tokens, repeats = budget.tokens, budget.repeats
    flops = seconds = 0.0
    for fan_in, fan_out in MATMUL_SHAPES:
        x, w = mx.random.normal((tokens, fan_in)), mx.random.normal((fan_out, fan_in))
        seconds += _timed(lambda x=x, w=w: x @ w.T, repeats)
        flops += 2 * tokens * fan_in * fan_out
    gate, up = mx.random.normal((tokens, MLP_WIDTH)), mx.random.normal((tokens, MLP_WIDTH))
    silu = mx.grad(lambda g, u: (nn.silu(g) * u).sum(), argnums=(0, 1))
    silu_seconds = _timed(lambda: silu(gate, up), repeats) / (2 * tokens * MLP_WIDTH)
    rows = max(1, tokens // 8)
    logits, targets = mx.random.normal((rows, VOCABULARY)), mx.zeros((rows,), mx.int32)
    loss = mx.grad(lambda x: nn.losses.cross_entropy(x, targets).sum())
    loss_seconds = _timed(lambda: loss(logits), repeats) / (2 * rows * VOCABULARY)
    big = mx.random.normal((budget.copy_mb * 2**20 // 4,))
    copy_seconds = _timed(lambda: big + 1, repeats)
    return {"matmul_flops": flops / seconds, "silu_seconds_per_value": silu_seconds,
            "cross_entropy_seconds_per_value": loss_seconds,
            "bandwidth": 2 * big.nbytes / copy_seconds}


def measure_in_child(budget: Budget, env: dict[str, str]) -> dict[str, float]:
    """`measure` in a fresh process with the training environment (LD_PRELOAD is read at
    process start only)."""
    done = subprocess.run(
        [sys.executable, "-m", "lorascope.training.calibration", json.dumps(asdict(budget))],
        env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"calibrating this machine failed (exit {done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- profiles (files)


def hardware_from_profile(profile: dict[str, Any], path: Path) -> Hardware:
    raw, load = profile["measured"], profile.get("load_average")
    busy = ""
    if load:  # other work on the machine slows the measurement down, and so the plan
        busy = f", load average {load[0]:.1f} on {profile['cores']} cores"
        if load[0] > profile["cores"] / 2:
            busy += ": busy, measure again when it is quiet (--calibrate)"
    per_value = ELEMENTWISE_COVERAGE * (raw["silu_seconds_per_value"]
                                        + raw["cross_entropy_seconds_per_value"]) / 2
    return Hardware(
        name=f"this machine ({profile['cpu']}, {profile['cores']} cores, {profile['blas']})",
        matmul_flops=raw["matmul_flops"], bandwidth=raw["bandwidth"],
        seconds_per_value=per_value, watts=ASSUMED_WATTS,
        source=f"measured on {profile['measured_at'][:10]} by lorascope plan ({path}){busy}; "
               f"watts assumed", machine=profile["key"])


def calibrate(home: Path, key: str | None = None, budget: Budget = Budget()) -> Hardware:
    """Measure this machine now and store its profile (replacing an older one)."""
    env = training_environment()
    key = key or machine_key(env)
    measured = measure_in_child(budget, env)
    profile = {"key": key, "cpu": _cpu_model(), "cores": os.cpu_count(),
               "blas": _blas_name(env), "measured": measured, "budget": asdict(budget),
               "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    path = profile_path(home, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(profile, indent=2) + "\n")
    partial.replace(path)
    return hardware_from_profile(profile, path)


def this_machine(home: Path, recalibrate: bool = False, key: str | None = None,
                 budget: Budget = Budget()) -> Hardware:
    """This machine's constants: its stored measurement, else its built-in profile, else
    measured now (once: later plans read the stored profile)."""
    key = key or machine_key()
    path = profile_path(home, key)
    if not recalibrate:
        if path.exists():
            return hardware_from_profile(json.loads(path.read_text()), path)
        builtin = builtin_profile(key)
        if builtin is not None:
            return builtin
    return calibrate(home, key, budget)


if __name__ == "__main__":
    print(json.dumps(measure(Budget(**json.loads(sys.argv[1])))))
