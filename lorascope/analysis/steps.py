"""The attention step of a run: base and tuned attention on the same prompt tokens,
compared per prompt, layer and head, into `attention_heads`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lorascope import warehouse
from lorascope.analysis.attention import attention_maps, layer_head_rows
from lorascope.config import BEHAVIOUR_SETS
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.evaluation.reuse import reuse_rows
from lorascope.models.chat import prompt_tokens
from lorascope.models.loader import load_model
from lorascope.runs import RunContext

# The eval settings the attention comparison depends on (the prompts it picks from, how many,
# how long): evaluations that agree on them share it.
ATTENTION_SETTINGS = ("prompts", "test_limit", "attention_prompts", "attention_max_tokens")


def spread_over_domains(prompts: Sequence[EvalPrompt], count: int) -> list[EvalPrompt]:
    """`count` prompts taken in turn from each domain (in file order), so in-domain and
    out-of-domain shifts can be compared."""
    by_domain: dict[str, list[EvalPrompt]] = {}
    for prompt in prompts:
        by_domain.setdefault(prompt.domain, []).append(prompt)
    queues = [list(reversed(group)) for group in by_domain.values()]
    chosen: list[EvalPrompt] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen


def analyze_attention(
    context: RunContext, prompts: Sequence[EvalPrompt], log: Callable[[str], None] = print,
) -> int:
    """Land per-(prompt, layer, head) attention statistics for base vs tuned; returns rows."""
    settings = context.config.eval
    # Behaviour prompts (harmful requests, long inputs, ...) are scored by their checkers.
    chosen = spread_over_domains([p for p in prompts if p.source not in BEHAVIOUR_SETS],
                                 settings.attention_prompts)
    if not chosen:
        return 0
    reused = reuse_rows(context, "attention_heads", ATTENTION_SETTINGS,
                        ("prompt_id", "layer", "head"), log=log)
    if reused:
        return reused

    def maps_of(adapters: Path | None) -> tuple[list[list[np.ndarray]], list[list[int]]]:
        model, tokenizer = load_model(context.model_path, context.config.model, adapters,
                                      home=context.home)
        tokens = [prompt_tokens(tokenizer, p.messages)[: settings.attention_max_tokens]
                  for p in chosen]
        # float16 halves what the base maps hold while the tuned model runs.
        maps = [[m.astype(np.float16) for m in attention_maps(model, ids)] for ids in tokens]
        return maps, tokens

    base_maps, tokens = maps_of(None)
    tuned_maps, _ = maps_of(context.paths.adapters)
    rows = [
        {"evaluation_id": context.evaluation_id, "run_id": context.run_id,
         "prompt_id": prompt.prompt_id, "tokens": len(ids), **row}
        for prompt, ids, base, tuned in zip(chosen, tokens, base_maps, tuned_maps, strict=True)
        for row in layer_head_rows(base, tuned)
    ]
    warehouse.write_rows(context.warehouse, "attention_heads", rows)
    log(f"attention: {len(chosen)} prompts × {len(base_maps[0])} layers compared")
    return len(rows)
