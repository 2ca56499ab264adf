"""Generation: lorascope's `generate_answers` vs mlx-lm's `batch_generate` on the demo's prompts.

Both sides run the same model, prompts (the sets the config's `eval.prompts` names, 102 for
configs/demo.yaml), chat-templated token lists, sampling and token budget, with the config's
`eval.batch_size` as the batch: lorascope's generation step as the pipeline runs it
(length-sorted chunks of `batch_size`), and mlx-lm's `batch_generate` with
`completion_batch_size=batch_size`, given the same length-sorted prompts and lorascope's
prefill group as its `prefill_batch_size` (both measured faster for it than its defaults).
Each side is reported as mlx-lm reports it: prompt tokens/s (prefill; every prompt token but
the last), generation tokens/s (generated tokens, an EOS included, over the time outside
prefill), plus wall seconds, end-to-end tokens/s and peak memory. "same" counts prompts whose
answers have the same text and number of tokens on both sides (tests/test_generation.py
checks the token ids). Goal: lorascope/mlx-lm >= 1.0x with every answer the same. The sides
alternate which runs first, round by round, and the median of the per-round ratios is the
result: this 2-core machine is shared and noisy. Run with OpenBLAS preloaded (`make bench`).

    python bench/generation.py [--config configs/demo.yaml] [--model NAME] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lorascope.config import load_config
from lorascope.data.builtin import resolve_eval_prompts
from lorascope.evaluation.generation import PREFILL_GROUP, generate_answers
from lorascope.evaluation.prompt_sets import load_prompt_sets
from lorascope.models.chat import prompt_tokens
from lorascope.models.loader import load_model, resolve_model


@dataclass
class Side:
    answers: dict[str, tuple[str, int]]  # prompt id -> (text, tokens)
    prompt_tokens: int
    prompt_seconds: float
    generation_tokens: int
    wall_seconds: float
    peak_gb: float

    def row(self) -> str:
        generation = self.generation_tokens / (self.wall_seconds - self.prompt_seconds)
        return (f"{self.wall_seconds:>8.1f}{self.prompt_tokens / self.prompt_seconds:>13.1f}"
                f"{self.generation_tokens:>8}{generation:>10.1f}"
                f"{self.generation_tokens / self.wall_seconds:>17.1f}{self.peak_gb:>8.2f}")


def lorascope_side(model, tokenizer, prompts, settings) -> Side:
    import mlx.core as mx

    rows: list[dict] = []
    mx.reset_peak_memory()
    tic = time.perf_counter()
    generate_answers(model, tokenizer, prompts, settings, seed=0, on_rows=rows.extend)
    wall = time.perf_counter() - tic
    prompt_tokens_ = sum(r["prompt_tokens"] - 1 for r in rows)
    # Each chunk's rows carry its prompt tokens/s: back to seconds, summed over the chunks.
    chunks: dict[int, list[dict]] = {}
    for r in rows:
        chunks.setdefault(r["batch_index"], []).append(r)
    prompt_seconds = sum(sum(r["prompt_tokens"] - 1 for r in chunk)
                         / chunk[0]["batch_prompt_tokens_per_second"]
                         for chunk in chunks.values())
    return Side({r["prompt_id"]: (r["output_text"], r["output_tokens"]) for r in rows},
                prompt_tokens_, prompt_seconds,
                sum(r["output_tokens"] + (r["finish_reason"] == "stop") for r in rows),
                wall, mx.get_peak_memory() / 1e9)


def mlx_lm_side(model, tokenizer, prompts, settings) -> Side:
    import mlx.core as mx
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    pairs = sorted(((p.prompt_id, prompt_tokens(tokenizer, p.messages)) for p in prompts),
                   key=lambda pair: len(pair[1]))
    mx.reset_peak_memory()
    tic = time.perf_counter()
    result = batch_generate(
        model, tokenizer, [ids for _, ids in pairs], max_tokens=settings.max_tokens,
        sampler=make_sampler(temp=settings.temperature), return_token_ids=True,
        completion_batch_size=settings.batch_size, prefill_batch_size=PREFILL_GROUP,
    )
    wall = time.perf_counter() - tic
    stats = result.stats
    return Side({pid: (text, len(ids)) for (pid, _), text, ids
                 in zip(pairs, result.texts, result.token_ids, strict=True)},
                stats.prompt_tokens, stats.prompt_time, stats.generation_tokens, wall,
                mx.get_peak_memory() / 1e9)


@dataclass
class Comparison:
    """Both sides' rounds on the same prompts."""

    rounds: list[tuple[Side, Side]]  # (lorascope, mlx-lm batch_generate) per round
    prompts: int

    @property
    def ratios(self) -> list[float]:
        """mlx-lm's wall seconds / lorascope's, per round (> 1: lorascope faster)."""
        return [theirs.wall_seconds / ours.wall_seconds for ours, theirs in self.rounds]

    @property
    def same(self) -> int:
        """Prompts whose answers are the same on both sides in every round."""
        return min(sum(ours.answers[pid] == theirs.answers[pid] for pid in theirs.answers)
                   for ours, theirs in self.rounds)


def compare_generation(config_path: str, source: str | None = None, limit: int | None = None,
                       rounds: int = 3, home: Path | None = None) -> Comparison:
    """Both sides on the config's eval prompts, alternating which runs first, round by round;
    prints each round's rows as it ends."""
    from mlx_lm.generate import batch_generate

    from lorascope.blas import describe_blas

    config = load_config(config_path)
    settings = config.eval
    source = source or config.model.source
    model, tokenizer = load_model(resolve_model(source, home))
    prompts = load_prompt_sets(settings.prompts, lambda: [],
                               partial(resolve_eval_prompts, home=home),
                               settings.behaviour_limit, config.seed)[:limit]
    batch_generate(model, tokenizer, [prompt_tokens(tokenizer, p.messages) for p in prompts[:2]],
                   max_tokens=4)  # warm up kernels

    print(f"{source}, {len(prompts)} prompts of {', '.join(settings.prompts)}, batch "
          f"{settings.batch_size}, temperature {settings.temperature}, max "
          f"{settings.max_tokens} new tokens; {describe_blas()}")
    print(f"{'round':<6}{'side':<22}{'wall s':>8}{'prompt tok/s':>13}{'gen tok':>8}"
          f"{'gen tok/s':>10}{'end-to-end tok/s':>17}{'peak GB':>8}{'same':>6}", flush=True)
    sides = {"lorascope": lorascope_side, "mlx-lm batch_generate": mlx_lm_side}
    done_rounds = []
    for round_number in range(1, rounds + 1):
        order = list(sides) if round_number % 2 else list(sides)[::-1]
        done = {name: sides[name](model, tokenizer, prompts, settings) for name in order}
        ours, theirs = done["lorascope"], done["mlx-lm batch_generate"]
        same = sum(ours.answers[pid] == theirs.answers[pid] for pid in theirs.answers)
        for name in order:
            print(f"{round_number:<6}{name:<22}{done[name].row()}{same:>6}", flush=True)
        done_rounds.append((ours, theirs))
    return Comparison(done_rounds, len(prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--model", help="instead of the config's model.source")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    result = compare_generation(args.config, args.model, args.limit, args.rounds)
    print(f"lorascope / batch_generate, speed (wall) median of {args.rounds} rounds: "
          f"{statistics.median(result.ratios):.2f}x (goal >= 1.0x; rounds "
          f"{', '.join(f'{r:.2f}' for r in result.ratios)}); answers the same: "
          f"{result.same} of {result.prompts} in every round")


if __name__ == "__main__":
    main()
