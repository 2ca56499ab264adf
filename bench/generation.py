"""Generation throughput: lorascope's batched generation vs one prompt at a time.

Both sides run the same model, prompts (the built-in eval prompts), greedy sampling and token
budget; sequential is mlx-lm's own `stream_generate`, one prompt after another, batched is
`lorascope.generation.generate_batch` (mlx-lm's BatchGenerator) on the whole batch. Generated
tokens per second are compared, so prompts that stop early at EOS count what they produced.
Target: >= 8x at batch 32 on smollm2-135m. Run with OpenBLAS preloaded (`make bench` does).

    python bench/generation.py [--model smollm2-135m] [--batch 32] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lorascope.builtin_data import resolve_eval_prompts
from lorascope.chat import prompt_tokens
from lorascope.generation import generate_batch, load_eval_prompts
from lorascope.models import load_model, resolve_model


def sequential(model, tokenizer, token_lists, max_tokens: int, sampler) -> tuple[int, float]:
    from mlx_lm.generate import stream_generate

    tokens, tic = 0, time.perf_counter()
    for ids in token_lists:
        for response in stream_generate(model, tokenizer, ids, max_tokens=max_tokens,
                                        sampler=sampler):
            tokens = tokens + 1 if response.finish_reason != "stop" else tokens
    return tokens, time.perf_counter() - tic


def batched(model, tokenizer, token_lists, max_tokens: int, sampler) -> tuple[int, float]:
    tic = time.perf_counter()
    rows = generate_batch(model, tokenizer, token_lists, max_tokens, sampler)
    return sum(r["output_tokens"] for r in rows), time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--sequential-prompts", type=int, default=8,
                        help="prompts run one at a time (a rate, so fewer than --batch is fine)")
    args = parser.parse_args()

    from mlx_lm.sample_utils import make_sampler

    from lorascope.blas import describe_blas

    model, tokenizer = load_model(resolve_model(args.model))
    prompts = load_eval_prompts(Path(resolve_eval_prompts("builtin:sciq-format")),
                                include_ifeval=True)[: args.batch]
    token_lists = [prompt_tokens(tokenizer, p.messages) for p in prompts]
    sampler = make_sampler(temp=0.0)
    generate_batch(model, tokenizer, token_lists[:2], 4, sampler)  # warm up kernels

    seq_tokens, seq_seconds = sequential(model, tokenizer, token_lists[: args.sequential_prompts],
                                         args.max_tokens, sampler)
    bat_tokens, bat_seconds = batched(model, tokenizer, token_lists, args.max_tokens, sampler)
    seq_rate, bat_rate = seq_tokens / seq_seconds, bat_tokens / bat_seconds
    print(f"{args.model}, greedy, max {args.max_tokens} new tokens; {describe_blas()}")
    print(f"{'mode':<22}{'prompts':>8}{'tokens':>8}{'seconds':>9}{'tok/s':>9}")
    print(f"{'sequential (mlx-lm)':<22}{args.sequential_prompts:>8}{seq_tokens:>8}"
          f"{seq_seconds:>9.1f}{seq_rate:>9.1f}")
    print(f"{'batched (lorascope)':<22}{len(token_lists):>8}{bat_tokens:>8}"
          f"{bat_seconds:>9.1f}{bat_rate:>9.1f}")
    print(f"speed-up: {bat_rate / seq_rate:.1f}x (target >= 8x)")


if __name__ == "__main__":
    main()
