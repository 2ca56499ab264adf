"""Batched generation for evaluation prompts, on mlx-lm's `BatchGenerator`.

Prompts run in chunks of `eval.batch_size` (left-padded by mlx-lm, each answer ending at its
own EOS or at `max_tokens`); each finished chunk is handed to `on_rows` so the caller can land it
in the warehouse at once, and prompts already there are skipped: an interrupted generation
step resumes where it stopped.

We drive `BatchGenerator` with the loop of mlx-lm's `batch_generate` rather than calling that
function, because it reports time per batch only: here every prompt gets its own latency (from
the start of its batch to its last token) and finish reason, and finished prompts stay in the
batch (see `generate_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import replace
from typing import Any

from lorascope.config import EvalConfig
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.models.chat import prompt_tokens


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


# Measured on 2 CPU cores, smollm2-135m: groups of 16 beat 4, 8 and 32 on 32 similar prompts
# (23.8 s vs 29.9, 26.6, 24.4) and tie with 8 on the demo's length-sorted chunks.
PREFILL_GROUP = 16

# Finished prompts leave the batch together once they are this share of its rows (see
# generate_batch). Measured on smollm2-135m, 2 CPU cores, 48 new tokens, seconds for the
# bench's 32 prompts / the demo's first 64 (base) / its two chunks (tuned, short answers):
# dropped at once as mlx-lm does 24.7 / 39.0 / 31.0, 52.9; at 0.25 20.5 / 34.5 / 29.8, 52.4;
# at 0.5 18.6 / 41.2 / 31.6, 52.8; never 24.8 / 42.8 / 45.2, 69.1.
REMOVE_FINISHED_SHARE = 0.25


def generate_batch(
    model: Any, tokenizer: Any, token_lists: list[list[int]], max_tokens: int, sampler: Any,
) -> tuple[list[dict[str, Any]], Any]:
    """One batch through mlx-lm's BatchGenerator: text, tokens, finish reason and latency per
    prompt, and mlx-lm's `BatchStats` for the batch (prompt and generation tokens/s as
    `batch_generate` reports them, peak memory).

    A prompt's answer ends at its first EOS (finish reason `stop`) or at `max_tokens`
    (`length`). EOS is checked here rather than given to mlx-lm as a stop token, because mlx-lm
    drops each finished sequence at once by copying every layer's KV cache without it (~0.2 s
    on smollm2 at batch 32, two thirds of a decode step); finished prompts are removed
    together once they are REMOVE_FINISHED_SHARE of the rows decoded, so at most that share of
    a step is spent on them and a batch pays a few copies, not one per early answer.
    """
    from mlx_lm.generate import BatchGenerator

    eos = set(tokenizer.eos_token_ids)
    generator = BatchGenerator(
        model, sampler=sampler,
        # Prompts are prefilled PREFILL_GROUP at a time, each group right-padded only to its
        # own longest prompt; prefilling the whole batch at once padded every prompt to the
        # longest one (62 IFEval/IFBench prompts of 49-174 tokens: 52 s before the first
        # token instead of 4-7 s).
        completion_batch_size=len(token_lists), prefill_batch_size=PREFILL_GROUP,
    )
    uids = generator.insert(token_lists, [max_tokens] * len(token_lists))
    tokens: dict[int, list[int]] = {uid: [] for uid in uids}
    finished: dict[int, tuple[str, float]] = {}
    still_decoded: list[int] = []  # finished at EOS, still rows of mlx-lm's batch
    tic = time.perf_counter()
    with closing(generator), generator.stats() as stats:
        while len(finished) < len(uids) and (responses := generator.next_generated()):
            for r in responses:
                if r.uid in finished:
                    continue
                if r.token in eos:  # the EOS token itself is not part of the text
                    finished[r.uid] = ("stop", time.perf_counter() - tic)
                    if r.finish_reason is None:
                        still_decoded.append(r.uid)
                    continue
                tokens[r.uid].append(r.token)
                if r.finish_reason == "length":
                    finished[r.uid] = ("length", time.perf_counter() - tic)
            if still_decoded and len(still_decoded) >= REMOVE_FINISHED_SHARE * len(responses):
                generator.remove(still_decoded)
                still_decoded = []
    rows = [
        {"output_text": tokenizer.decode(tokens[uid]), "output_tokens": len(tokens[uid]),
         "finish_reason": finished[uid][0], "latency_seconds": finished[uid][1]}
        for uid in uids
    ]
    # Tokens generated for prompts, counted as mlx-lm counts them (an EOS is a generated
    # token), not the ones decoded after a prompt had finished.
    generated = sum(len(tokens[uid]) + (finished[uid][0] == "stop") for uid in uids)
    return rows, replace(stats, generation_tokens=generated)


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[EvalPrompt],
    settings: EvalConfig,
    seed: int,
    on_rows: Callable[[list[dict[str, Any]]], None],
    skip_ids: set[str] = frozenset(),
) -> int:
    """Generate for every prompt not in `skip_ids`; returns how many were generated."""
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler

    # Prompts of similar length share a batch: left padding to the longest prompt of a batch
    # costs prefill compute, and the IFEval/IFBench prompts are several times the SciQ ones.
    pending = sorted(
        ((p, prompt_tokens(tokenizer, p.messages)) for p in prompts if p.prompt_id not in skip_ids),
        key=lambda pair: len(pair[1]),
    )
    sampler = make_sampler(temp=settings.temperature)
    for index, batch in enumerate(chunks(pending, settings.batch_size)):
        mx.random.seed(seed + index)  # sampling is reproducible per chunk, even on resume
        chunk, token_lists = [p for p, _ in batch], [ids for _, ids in batch]
        outputs, stats = generate_batch(model, tokenizer, token_lists, settings.max_tokens,
                                        sampler)
        throughput = sum(o["output_tokens"] for o in outputs) / stats.wall_time
        on_rows([
            {
                "prompt_id": p.prompt_id,
                "prompt_text": tokenizer.decode(ids),
                "prompt_tokens": len(ids),
                **output,
                "batch_index": index,
                "batch_size": len(chunk),
                "batch_tokens_per_second": throughput,
                "batch_prompt_tokens_per_second": stats.prompt_tps,
                "batch_generation_tokens_per_second": stats.generation_tps,
                "batch_peak_memory_gb": stats.peak_memory,
            }
            for p, ids, output in zip(chunk, token_lists, outputs, strict=True)
        ])
    return len(pending)
