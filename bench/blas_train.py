"""LoRA training throughput: MLX on an optimized BLAS vs the mlx-cpu wheel's reference BLAS.

Runs the same lorascope training (model, data, config, seed) in two fresh processes, one
with OpenBLAS preloaded and one without, and prints tokens/s side by side. Target: >= 25x.

    python bench/blas_train.py [--model smollm2-135m] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(model_source: str, steps: int, home: Path) -> dict[str, float]:
    from lorascope.builtin_data import resolve_data_source
    from lorascope.config import parse_config
    from lorascope.data import load_splits
    from lorascope.models import load_model, resolve_model
    from lorascope.training import train_adapters

    config = parse_config({
        "model": {"source": model_source},
        "train": {"iters": steps, "batch_size": 4, "steps_per_report": 1, "save_every": steps,
                  "steps_per_eval": steps + 1, "val_batches": 1},
    })
    model_path = resolve_model(model_source, home)
    splits = load_splits(resolve_data_source(config.data.source, home))
    model, tokenizer = load_model(model_path)
    reports: list[dict] = []
    with tempfile.TemporaryDirectory() as run_dir:
        train_adapters(
            model, tokenizer, [r.messages for r in splits["train"]],
            [r.messages for r in splits["valid"]], config, model_path, Path(run_dir),
            "bench", "bench", sink=reports.extend, log=lambda _: None,
        )
    rates = [r["tokens_per_second"] for r in reports if r["split"] == "train"]
    # The first step includes graph compilation; report the steady state after it.
    return {"tokens_per_second": statistics.median(rates[1:] or rates), "steps": len(rates)}


def run_worker(blas: str, model: str, steps: int, home: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if blas == "optimized":
        from lorascope.blas import find_optimized_blas

        library = find_optimized_blas()
        if library is None:
            raise SystemExit("no optimized BLAS found: apt-get install libopenblas0-pthread")
        env["LD_PRELOAD"] = str(library)
    command = [sys.executable, __file__, "--worker", "--model", model, "--steps", str(steps),
               "--home", str(home)]
    output = subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--home", default=os.environ.get("LORASCOPE_HOME", ".lorascope"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = Path(args.home).resolve()
    if args.worker:
        print(json.dumps(worker(args.model, args.steps, home)))
        return
    from lorascope.models import resolve_model

    resolve_model(args.model, home)  # prepare once, outside the timed processes
    optimized = run_worker("optimized", args.model, args.steps, home)
    reference = run_worker("reference", args.model, args.steps, home)
    ratio = optimized["tokens_per_second"] / reference["tokens_per_second"]
    print(f"LoRA training, {args.model}, batch 4, {args.steps} steps (median after the first)")
    print(f"{'BLAS':<28}{'train tok/s':>14}")
    print(f"{'OpenBLAS (preloaded)':<28}{optimized['tokens_per_second']:>14.1f}")
    print(f"{'mlx-cpu bundled reference':<28}{reference['tokens_per_second']:>14.1f}")
    print(f"{'speed-up':<28}{ratio:>13.1f}x   (target >= 25x)")


if __name__ == "__main__":
    main()
