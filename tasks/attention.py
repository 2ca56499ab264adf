"""Compare the attention patterns of base and tuned on the same evaluation prompts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.attention import attention_maps, layer_head_rows
from lorascope.chat import prompt_tokens
from lorascope.context import RunContext
from lorascope.generation import EvalPrompt, load_eval_prompts
from lorascope.models import load_model


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


def analyze_attention(context: RunContext, log: Callable[[str], None] = print) -> int:
    """Land per-(prompt, layer, head) attention statistics for base vs tuned; returns rows."""
    settings, model_config = context.config.eval, context.config.model
    prompts = spread_over_domains(load_eval_prompts(context.eval_prompts_path),
                                  settings.attention_prompts)
    if not prompts:
        return 0

    def maps_of(adapter: Any) -> tuple[list[list[np.ndarray]], list[list[int]]]:
        model, tokenizer = load_model(
            context.model_path, adapter_path=adapter, quantize_bits=model_config.quantize_bits,
            quantize_group_size=model_config.quantize_group_size,
            chat_template=model_config.chat_template,
        )
        tokens = [prompt_tokens(tokenizer, p.messages)[: settings.attention_max_tokens]
                  for p in prompts]
        # float16 halves what the base maps hold while the tuned model runs.
        maps = [[m.astype(np.float16) for m in attention_maps(model, ids)] for ids in tokens]
        return maps, tokens

    base_maps, tokens = maps_of(None)
    tuned_maps, _ = maps_of(context.adapter_dir)
    rows = [
        {"run_id": context.run_id, "prompt_id": prompt.prompt_id, "tokens": len(ids), **row}
        for prompt, ids, base, tuned in zip(prompts, tokens, base_maps, tuned_maps, strict=True)
        for row in layer_head_rows(base, tuned)
    ]
    warehouse.write_rows(context.warehouse, "attention_heads", rows)
    log(f"attention: {len(prompts)} prompts × {len(base_maps[0])} layers compared")
    return len(rows)


@task(name="attention", cache_policy=NO_CACHE)
def attention_task(context: RunContext) -> int:
    return analyze_attention(context, log=get_run_logger().info)
