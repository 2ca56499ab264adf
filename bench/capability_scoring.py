"""Capability scoring throughput: lorascope's batched, prefix-shared scoring vs mlx-lm's
lm-eval model, on the same ARC-Easy questions.

Both sides score every (context, choice) pair of the first `--items` ARC-Easy questions with
the same loaded model: mlx-lm's side is `mlx_lm.evaluate.MLXLM.loglikelihood` (what
`mlx_lm.evaluate` and lm-eval's `mlxlm` model run: each question's context once into a KV
cache, then each choice alone), lorascope's is `capability.choice_loglikelihoods` (contexts
batched, choices batched after them; `score_items` adds only the argmaxes). Both run
`--rounds` times, alternating, and the median of the per-round ratios is the result (this
2-core machine is shared, and its run-to-run noise is large).
Agreement: questions whose per-choice log-likelihoods agree within rtol 1e-5 + atol 1e-4 and
whose is-greedy flags are equal, and questions whose predicted choice (acc's argmax) is the
same. Target: >= 2x. Run with OpenBLAS preloaded (`make bench` does).

    python bench/capability_scoring.py [--model smollm2-135m] [--items 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lorascope.evaluation.capability import choice_loglikelihoods, item_requests, load_task
from lorascope.evaluation.harness import LoadedMLXLM
from lorascope.models.loader import load_model, resolve_model

MLX_LM, LORASCOPE = "mlx-lm MLXLM.loglikelihood", "lorascope choice_loglikelihoods"


def mlx_lm_scores(model, tokenizer, items) -> list[list[tuple[float, bool]]]:
    from lm_eval.api.instance import Instance

    flat = LoadedMLXLM(model, tokenizer).loglikelihood([
        Instance("loglikelihood", {}, (item.context, choice), index)
        for index, item in enumerate(items) for choice in item.choices
    ])
    ends = np.cumsum([len(item.choices) for item in items])
    return [[(score, bool(greedy)) for score, greedy in flat[end - len(item.choices) : end]]
            for end, item in zip(ends, items, strict=True)]


def lorascope_scores(model, tokenizer, items) -> list[list[tuple[float, bool]]]:
    return choice_loglikelihoods(model, [item_requests(tokenizer, item) for item in items])


def agreement(ours, theirs) -> tuple[int, int]:
    """Questions whose choices' (log-likelihood, is-greedy) agree; whose argmax agrees."""
    scores = greedy = 0
    for a, b in zip(ours, theirs, strict=True):
        a_ll, b_ll = np.array([s for s, _ in a]), np.array([s for s, _ in b])
        scores += bool(np.allclose(a_ll, b_ll, rtol=1e-5, atol=1e-4)
                       and [g for _, g in a] == [g for _, g in b])
        greedy += bool(np.argmax(a_ll) == np.argmax(b_ll))
    return scores, greedy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=100, help="ARC-Easy questions")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import logging

    from lorascope.blas import describe_blas

    logging.getLogger().setLevel(logging.WARNING)
    model, tokenizer = load_model(resolve_model(args.model))
    items = load_task("arc_easy", args.items)
    lorascope_scores(model, tokenizer, items[:2])  # warm up kernels
    print(f"{args.model}, {len(items)} ARC-Easy questions "
          f"({sum(len(i.choices) for i in items)} choices); {describe_blas()}")
    print(f"{'round':<6}{'scorer':<34}{'wall s':>8}{'CPU s':>8}{'questions/s':>13}")
    ratios, results = [], {}
    for round_number in range(1, args.rounds + 1):
        seconds = {}
        for name, scorer in ((MLX_LM, mlx_lm_scores), (LORASCOPE, lorascope_scores)):
            tic, cpu = time.perf_counter(), time.process_time()
            results[name] = scorer(model, tokenizer, items)
            seconds[name] = time.perf_counter() - tic
            print(f"{round_number:<6}{name:<34}{seconds[name]:>8.1f}"
                  f"{time.process_time() - cpu:>8.1f}{len(items) / seconds[name]:>13.2f}")
        ratios.append(seconds[MLX_LM] / seconds[LORASCOPE])
    scores, argmax = agreement(*results.values())
    print(f"lorascope / mlx-lm questions/s, median of {args.rounds} rounds: "
          f"{statistics.median(ratios):.1f}x (target >= 2x; rounds "
          f"{', '.join(f'{r:.1f}' for r in ratios)})")
    print(f"agreement: {scores}/{len(items)} questions with every choice's log-likelihood "
          f"(rtol 1e-5, atol 1e-4) and is-greedy flag equal; {argmax}/{len(items)} with the "
          "same predicted choice")


if __name__ == "__main__":
    main()
