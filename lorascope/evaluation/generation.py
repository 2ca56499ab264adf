"""Batched generation for evaluation prompts, on mlx-lm's model, KV caches and prefill.

Prompts run in chunks of `eval.batch_size` (each answer ending at its own EOS or at
`max_tokens`); each finished chunk is handed to `on_rows` so the caller can land it in the
warehouse at once, and prompts already there are skipped: an interrupted generation step
resumes where it stopped.

A chunk is prefilled with mlx-lm's `PromptProcessingBatch` (the prefill of its
`BatchGenerator`) and decoded by our own loop rather than by `BatchGenerator`, which gives the
same greedy tokens (tests/test_generation.py) in less time (bench/generation.py), for three
reasons: every prompt of a chunk is prefilled before the first decode step, so all rows
decode together (BatchGenerator decodes the first prefill group while it prefills the next,
which spreads a chunk's tokens over more, smaller steps); a greedy step takes the argmax of
the logits, not of mlx-lm's log-probabilities (their log-sum-exp over the vocabulary made a
smollm2-135m decode step at batch 64 take 0.38 s instead of 0.32); finished prompts leave
the batch together, not one KV-cache copy each (see `generate_batch`). Every prompt also gets
its own latency (from the start of its chunk to its last token) and finish reason, which
`batch_generate` does not report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lorascope.config import EvalConfig
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.models.chat import prompt_tokens


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


# A chunk of length-sorted prompts ends before a prompt this many times longer than its first:
# every row of a chunk is padded to, and decodes over, its longest prompt. Measured on the
# demo's 182 prompts (35 to 950 tokens, smollm2-135m, 2 CPU cores): chunks of 64 put the
# eight ~850-token long-input prompts with 38 short ones, and that chunk took 96 s of the 143.
MAX_LENGTH_RATIO = 2.0


def length_chunks(lengths: Sequence[int], size: int) -> list[range]:
    """Index ranges of ascending `lengths`, each at most `size` long and ending before a
    length above MAX_LENGTH_RATIO times the range's first."""
    ranges, start = [], 0
    for index, length in enumerate(lengths):
        if index - start == size or length > MAX_LENGTH_RATIO * max(lengths[start], 1):
            ranges.append(range(start, index))
            start = index
    if start < len(lengths):
        ranges.append(range(start, len(lengths)))
    return ranges


# Measured on 2 CPU cores, smollm2-135m: groups of 16 beat 4, 8 and 32 on 32 similar prompts
# (23.8 s vs 29.9, 26.6, 24.4) and tie with 8 on the demo's length-sorted chunks (both under
# BatchGenerator); with this module's decode loop, 16 and 32 tie on the demo's 102 prompts
# (71.3, 78.2 s vs 77.8, 76.1 s in two rounds).
PREFILL_GROUP = 16

# Finished prompts leave the batch together once they are this share of its rows (see
# generate_batch). Measured on smollm2-135m, 2 CPU cores, 48 new tokens, seconds for the
# bench's 32 prompts / the demo's first 64 (base) / its two chunks (tuned, short answers):
# dropped at once as mlx-lm does 24.7 / 39.0 / 31.0, 52.9; at 0.25 20.5 / 34.5 / 29.8, 52.4;
# at 0.5 18.6 / 41.2 / 31.6, 52.8; never 24.8 / 42.8 / 45.2, 69.1.
REMOVE_FINISHED_SHARE = 0.25


@dataclass
class Answer:
    token_ids: list[int]  # without the EOS that ended it
    text: str
    finish_reason: str  # "stop" at EOS, "length" at max_tokens
    latency_seconds: float  # from the start of the batch to the answer's last token


def prefill(model: Any, token_lists: list[list[int]]) -> list[Any]:
    """The batch's KV cache (one per layer) over every prompt but its last token.

    Prompts are prefilled PREFILL_GROUP at a time, each group right-padded only to its own
    longest prompt (prefilling the whole batch at once padded every prompt to the longest
    one: 62 IFEval/IFBench prompts of 49-174 tokens took 52 s before the first token instead
    of 4-7 s); mlx-lm's prefill turns that into left padding, and the groups are joined."""
    from mlx_lm.generate import PromptProcessingBatch
    from mlx_lm.models.cache import make_prompt_cache

    cache: list[Any] = []
    for group in chunks(token_lists, PREFILL_GROUP):
        part = PromptProcessingBatch(model, list(range(len(group))),
                                     [make_prompt_cache(model) for _ in group])
        part.prompt([ids[:-1] for ids in group])
        if not cache:
            cache = part.prompt_cache
        else:
            for layer, more in zip(cache, part.prompt_cache, strict=True):
                layer.extend(more)
    return cache


def generate_batch(
    model: Any, tokenizer: Any, token_lists: list[list[int]], max_tokens: int, sampler: Any,
) -> tuple[list[Answer], Any]:
    """One batch: an answer per prompt, and mlx-lm's `BatchStats` for the batch (prompt and
    generation tokens/s as `batch_generate` reports them, peak memory).

    An answer ends at its first EOS (finish reason `stop`, the EOS not part of it) or at
    `max_tokens` (`length`). Finished prompts stay rows of the batch until they are
    REMOVE_FINISHED_SHARE of it, then leave together: removing a row copies every layer's KV
    cache (~0.2 s on smollm2 at batch 32, two thirds of a decode step; mlx-lm does it for each
    answer as it finishes), so at most that share of a step is spent on finished rows and a
    batch pays a few copies, not one per early answer.
    """
    import mlx.core as mx
    from mlx_lm.generate import generation_stream
    from mlx_lm.generate_utils import BatchStats
    from mlx_lm.sample_utils import greedy_sampler

    eos = set(tokenizer.eos_token_ids)
    stats = BatchStats(prompt_tokens=sum(len(ids) - 1 for ids in token_lists))
    tic = time.perf_counter()
    with mx.stream(generation_stream):
        cache = prefill(model, token_lists)
        stats.prompt_time = time.perf_counter() - tic

        def step(inputs: Any) -> Any:
            logits = model(inputs[:, None], cache=cache)[:, -1, :]
            if sampler is greedy_sampler:
                # Log-probabilities are the logits less one number per row, in the same order
                # (unless rounding makes two of them equal), so their argmax is the logits'.
                return mx.argmax(logits, axis=-1)
            return sampler(logits - mx.logsumexp(logits, axis=-1, keepdims=True))

        rows = list(range(len(token_lists)))  # the prompt in each row of the batch
        tokens: list[list[int]] = [[] for _ in token_lists]
        finished: dict[int, tuple[str, float]] = {}
        sampled = step(mx.array([ids[-1] for ids in token_lists]))
        mx.async_eval(sampled)
        for position in range(1, max_tokens + 1):
            # The next step is queued before this one's tokens are read, as mlx-lm does, so
            # the work of this loop overlaps the model's.
            following = step(sampled) if position < max_tokens else None
            if following is not None:
                mx.async_eval(following)
            step_tokens = sampled.tolist()
            now = time.perf_counter() - tic
            for prompt, token in zip(rows, step_tokens, strict=True):
                if prompt in finished:
                    continue
                stats.generation_tokens += 1  # an EOS is a generated token, as mlx-lm counts
                if token in eos:
                    finished[prompt] = ("stop", now)
                    continue
                tokens[prompt].append(token)
                if position == max_tokens:
                    finished[prompt] = ("length", now)
            stats.generation_steps += 1
            if len(finished) == len(token_lists):
                break
            done = [i for i, prompt in enumerate(rows) if prompt in finished]
            if done and len(done) >= REMOVE_FINISHED_SHARE * len(rows):
                keep = [i for i, prompt in enumerate(rows) if prompt not in finished]
                for layer in cache:
                    layer.filter(keep)
                following = following[mx.array(keep)]
                rows = [rows[i] for i in keep]
            sampled = following
    stats.wall_time = time.perf_counter() - tic
    stats.decode_time = stats.wall_time - stats.prompt_time
    stats.peak_memory = mx.get_peak_memory() / 1e9
    answers = [Answer(tokens[p], tokenizer.decode(tokens[p]), *finished[p])
               for p in range(len(token_lists))]
    return answers, stats


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

    # Prompts of similar length share a chunk: left padding to the longest prompt of a chunk
    # costs prefill and decode compute, and prompt sets differ in length many times over.
    pending = sorted(
        ((p, prompt_tokens(tokenizer, p.messages)) for p in prompts if p.prompt_id not in skip_ids),
        key=lambda pair: len(pair[1]),
    )
    sampler = make_sampler(temp=settings.temperature)
    lengths = [len(ids) for _, ids in pending]
    for index, rows in enumerate(length_chunks(lengths, settings.batch_size)):
        mx.random.seed(seed + index)  # sampling is reproducible per chunk, even on resume
        chunk, token_lists = [pending[i][0] for i in rows], [pending[i][1] for i in rows]
        answers, stats = generate_batch(model, tokenizer, token_lists, settings.max_tokens,
                                        sampler)
        throughput = sum(len(a.token_ids) for a in answers) / stats.wall_time
        on_rows([
            {
                "prompt_id": p.prompt_id,
                "prompt_text": tokenizer.decode(ids),
                "prompt_tokens": len(ids),
                "output_text": answer.text,
                "output_tokens": len(answer.token_ids),
                "finish_reason": answer.finish_reason,
                "latency_seconds": answer.latency_seconds,
                "batch_index": index,
                "batch_size": len(chunk),
                "batch_tokens_per_second": throughput,
                "batch_prompt_tokens_per_second": stats.prompt_tps,
                "batch_generation_tokens_per_second": stats.generation_tps,
                "batch_peak_memory_gb": stats.peak_memory,
            }
            for p, ids, answer in zip(chunk, token_lists, answers, strict=True)
        ])
    return len(pending)
