"""Batched generation for evaluation prompts, on mlx-lm's `batch_generate`.

Prompts run in chunks of `eval.batch_size`; each finished chunk is handed to `on_rows` so the
caller can land it in the warehouse at once, and prompts already there are skipped: an
interrupted generation step resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorascope.chat import prompt_tokens
from lorascope.config import EvalConfig


@dataclass(frozen=True)
class EvalPrompt:
    prompt_id: str
    domain: str
    category: str
    messages: list[dict[str, str]]
    reference: str | None = None
    aliases: list[str] = field(default_factory=list)

    @property
    def user_text(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def load_eval_prompts(path: Path) -> list[EvalPrompt]:
    prompts = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompts.append(EvalPrompt(
                    prompt_id=str(row["id"]), domain=row.get("domain", "in_domain"),
                    category=row.get("category", ""), messages=row["messages"],
                    reference=row.get("reference"), aliases=list(row.get("aliases") or []),
                ))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a valid eval prompt ({error})") from None
    return prompts


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


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
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    pending = [p for p in prompts if p.prompt_id not in skip_ids]
    sampler = make_sampler(temp=settings.temperature)
    for index, chunk in enumerate(chunks(pending, settings.batch_size)):
        mx.random.seed(seed + index)  # sampling is reproducible per chunk, even on resume
        token_lists = [prompt_tokens(tokenizer, p.messages) for p in chunk]
        tic = time.perf_counter()
        response = batch_generate(
            model, tokenizer, token_lists, max_tokens=settings.max_tokens,
            sampler=sampler, return_token_ids=True,
        )
        elapsed = time.perf_counter() - tic
        on_rows([
            {
                "prompt_id": p.prompt_id,
                "prompt_text": tokenizer.decode(ids),
                "output_text": text,
                "prompt_tokens": len(ids),
                "output_tokens": len(out),
                "finish_reason": "length" if len(out) >= settings.max_tokens else "stop",
                # batch_generate reports per batch, so each prompt carries its batch's time.
                "latency_seconds": elapsed,
            }
            for p, ids, text, out in zip(chunk, token_lists, response.texts, response.token_ids)
        ])
    return len(pending)
