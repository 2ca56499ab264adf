"""Generation throughput: lorascope's batched generation vs one prompt at a time.

Both sides run the same model, prompts (the built-in eval prompts), greedy sampling and token
budget; sequential is mlx-lm's own `stream_generate`, one prompt after another, batched is
`lorascope.evaluation.generation.generate_batch` (mlx-lm's BatchGenerator) on the whole batch.
Each side is measured the way mlx-lm reports it: prompt tokens/s (prefill), generation tokens/s
(generated tokens over the time outside prefill; `stream_generate`'s `generation_tps`,
`batch_generate`'s `BatchStats.generation_tps`), plus end-to-end tokens/s on our own clock.
Target: generation tokens/s >= 8x at batch 32 on smollm2-135m. Both sides run `--rounds` times,
alternating, and the median of the per-round ratios is the result (this 2-core machine's run-
to-run noise is about 15 %). Run with OpenBLAS preloaded (`make bench` does).

    python bench/generation.py [--model smollm2-135m] [--batch 32] [--max-tokens 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from dataclasses import dataclass

from lorascope.data.builtin import resolve_eval_prompts
from lorascope.evaluation.generation import generate_batch
from lorascope.evaluation.prompts import builtin_prompt_set, read_eval_prompts
from lorascope.models.chat import prompt_tokens
from lorascope.models.loader import load_model, resolve_model


@dataclass
class Throughput:
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    generation_tokens: int = 0
    generation_seconds: float = 0.0
    wall_seconds: float = 0.0

    def rates(self) -> tuple[float, float, float]:
        """Prompt, generation and end-to-end tokens per second."""
        return (self.prompt_tokens / self.prompt_seconds,
                self.generation_tokens / self.generation_seconds,
                self.generation_tokens / self.wall_seconds)


def sequential(model, tokenizer, token_lists, max_tokens: int, sampler) -> Throughput:
    from mlx_lm.generate import stream_generate

    total, tic = Throughput(), time.perf_counter()
    for ids in token_lists:
        (last,) = deque(stream_generate(model, tokenizer, ids, max_tokens=max_tokens,
                                        sampler=sampler), maxlen=1)
        # mlx-lm's own per-prompt rates, turned back into tokens and seconds to sum them
        total.prompt_tokens += last.prompt_tokens
        total.prompt_seconds += last.prompt_tokens / last.prompt_tps
        total.generation_tokens += last.generation_tokens
        total.generation_seconds += last.generation_tokens / last.generation_tps
    total.wall_seconds = time.perf_counter() - tic
    return total


def batched(model, tokenizer, token_lists, max_tokens: int, sampler) -> Throughput:
    tic = time.perf_counter()
    _, stats = generate_batch(model, tokenizer, token_lists, max_tokens, sampler)
    return Throughput(stats.prompt_tokens, stats.prompt_time, stats.generation_tokens,
                      stats.generation_time, time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--sequential-prompts", type=int, default=8,
                        help="prompts run one at a time (a rate, so fewer than --batch is fine)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from mlx_lm.sample_utils import make_sampler

    from lorascope.blas import describe_blas

    model, tokenizer = load_model(resolve_model(args.model))
    prompts = (read_eval_prompts(resolve_eval_prompts("builtin:sciq-format"))
               + builtin_prompt_set("ifeval"))[: args.batch]
    token_lists = [prompt_tokens(tokenizer, p.messages) for p in prompts]
    sampler = make_sampler(temp=0.0)
    generate_batch(model, tokenizer, token_lists[:2], 4, sampler)  # warm up kernels

    print(f"{args.model}, greedy, max {args.max_tokens} new tokens; {describe_blas()}")
    print(f"{'round':<6}{'mode':<22}{'prompts':>8}{'prompt tok':>11}{'prompt tok/s':>13}"
          f"{'gen tok':>8}{'gen tok/s':>10}{'wall s':>8}{'end-to-end tok/s':>17}")
    ratios = []
    for round_number in range(1, args.rounds + 1):
        seq = sequential(model, tokenizer, token_lists[: args.sequential_prompts],
                         args.max_tokens, sampler)
        bat = batched(model, tokenizer, token_lists, args.max_tokens, sampler)
        for name, count, t in (("sequential (mlx-lm)", args.sequential_prompts, seq),
                               ("batched (lorascope)", len(token_lists), bat)):
            prompt_rate, generation_rate, end_to_end = t.rates()
            print(f"{round_number:<6}{name:<22}{count:>8}{t.prompt_tokens:>11}"
                  f"{prompt_rate:>13.1f}{t.generation_tokens:>8}{generation_rate:>10.1f}"
                  f"{t.wall_seconds:>8.1f}{end_to_end:>17.1f}")
        ratios.append([b / s for b, s in zip(bat.rates(), seq.rates(), strict=True)])
    prompt, generation, end_to_end = (statistics.median(r) for r in zip(*ratios, strict=True))
    print(f"batched / sequential, median of {args.rounds} rounds: generation {generation:.1f}x "
          f"(target >= 8x; rounds {', '.join(f'{r[1]:.1f}' for r in ratios)}), "
          f"prompt {prompt:.1f}x, end to end {end_to_end:.1f}x")


if __name__ == "__main__":
    main()
