"""Evaluate base and tuned: generate, score, measure capability preservation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.capability import load_task, score_items
from lorascope.context import RunContext
from lorascope.generation import EvalPrompt, generate_answers, load_eval_prompts
from lorascope.models import load_model
from lorascope.runinfo import utc_now
from lorascope.scoring import failure_modes, goal_scores

VARIANTS = ("base", "tuned")


def load_variant(context: RunContext, variant: str) -> tuple[Any, Any]:
    model = context.config.model
    return load_model(
        context.model_path,
        adapter_path=context.adapter_dir if variant == "tuned" else None,
        quantize_bits=model.quantize_bits, quantize_group_size=model.quantize_group_size,
        chat_template=model.chat_template,
    )


def record_prompts(context: RunContext, prompts: list[EvalPrompt]) -> None:
    warehouse.write_rows(context.warehouse, "prompts", [
        {"run_id": context.run_id, "prompt_id": p.prompt_id, "domain": p.domain,
         "category": p.category, "messages": p.messages, "reference": p.reference}
        for p in prompts
    ])


def generate_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> int:
    """Generate the variant's answers for every prompt it has none for yet."""
    prompts = load_eval_prompts(context.eval_prompts_path)
    record_prompts(context, prompts)
    _, rows = warehouse.query(
        context.warehouse,
        "select prompt_id from generations where run_id = ? and variant = ?",
        [context.run_id, variant],
    )
    done = {prompt_id for (prompt_id,) in rows}
    if len(done) >= len(prompts):
        log(f"{variant}: all {len(prompts)} generations already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)

    def land(batch: list[dict[str, Any]]) -> None:
        warehouse.write_rows(context.warehouse, "generations", [
            {"run_id": context.run_id, "variant": variant, "created_at": utc_now(), **row}
            for row in batch
        ])
        log(f"{variant}: {len(batch)} generations landed")

    return generate_answers(model, tokenizer, prompts, context.config.eval,
                            context.config.seed, on_rows=land, skip_ids=done)


def score_run(context: RunContext) -> int:
    """Score every generation of the run (delete-then-insert, so re-scoring is idempotent)."""
    prompts = {p.prompt_id: p for p in load_eval_prompts(context.eval_prompts_path)}
    _, rows = warehouse.query(
        context.warehouse,
        "select variant, prompt_id, output_text, finish_reason from generations where run_id = ?",
        [context.run_id],
    )
    scores, failures = [], []
    for variant, prompt_id, output, finish_reason in rows:
        prompt = prompts[prompt_id]
        key = {"run_id": context.run_id, "variant": variant, "prompt_id": prompt_id}
        scores += [{**key, "metric": m, "value": v} for m, v in goal_scores(prompt, output).items()]
        failures += [{**key, **f} for f in failure_modes(prompt, output, finish_reason)]
    for table, table_rows in (("scores", scores), ("failure_modes", failures)):
        warehouse.delete_rows(context.warehouse, table, context.run_id)
        warehouse.write_rows(context.warehouse, table, table_rows)
    return len(scores)


def capability_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> None:
    settings = context.config.eval
    model, tokenizer = load_variant(context, variant)
    for name in settings.capability_tasks:
        items = load_task(name, settings.capability_limit)
        rows = score_items(model, tokenizer, items)
        warehouse.write_rows(context.warehouse, "capability_items", [
            {"run_id": context.run_id, "variant": variant, "task": name, **row} for row in rows
        ])
        accuracy = sum(r["correct"] for r in rows) / len(rows)
        log(f"{variant} {name}: acc {accuracy:.3f} on {len(rows)} items")


@task(name="generate", cache_policy=NO_CACHE, retries=1, task_run_name="generate-{variant}")
def generate_task(context: RunContext, variant: str) -> int:
    return generate_variant(context, variant, log=get_run_logger().info)


@task(name="score", cache_policy=NO_CACHE)
def score_task(context: RunContext) -> int:
    count = score_run(context)
    get_run_logger().info("%d scores written", count)
    return count


@task(name="capability", cache_policy=NO_CACHE, task_run_name="capability-{variant}")
def capability_task(context: RunContext, variant: str) -> None:
    capability_variant(context, variant, log=get_run_logger().info)
