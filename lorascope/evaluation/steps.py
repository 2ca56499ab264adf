"""The evaluation steps of a run, base and tuned alike: generate answers to the eval prompts,
score them, measure capability preservation and run lm-eval tasks, each landing its rows in
the warehouse. Work already stored for the run is skipped, so a resumed run picks up here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lorascope import warehouse
from lorascope.evaluation.capability import PERPLEXITY_CORPORA, load_task, passage_nll, score_items
from lorascope.evaluation.generation import generate_answers
from lorascope.evaluation.prompts import EvalPrompt, load_eval_prompts
from lorascope.evaluation.scoring import score_generation
from lorascope.models.loader import load_model
from lorascope.runs import RunContext, utc_now

VARIANTS = ("base", "tuned")


def load_variant(context: RunContext, variant: str) -> tuple[Any, Any]:
    """The base model, or the base with the run's adapters."""
    adapters = context.paths.adapters if variant == "tuned" else None
    return load_model(context.model_path, context.config.model, adapter_path=adapters)


def run_prompts(context: RunContext) -> list[EvalPrompt]:
    """The run's eval prompts (file plus opted-in built-ins), recorded in `prompts`."""
    settings = context.config.eval
    prompts = load_eval_prompts(context.eval_prompts_path, settings.ifeval_prompts,
                                settings.ifbench_prompts)
    warehouse.write_rows(context.warehouse, "prompts", [
        {"run_id": context.run_id, "prompt_id": p.prompt_id, "domain": p.domain,
         "category": p.category, "messages": p.messages, "reference": p.reference,
         "instructions": p.instructions or None}
        for p in prompts
    ])
    return prompts


def stored_values(context: RunContext, table: str, column: str, **equals: Any) -> set:
    """Distinct `column` values of the run's rows in `table` whose columns equal `equals`."""
    where = "".join(f" and {name} = ?" for name in equals)
    _, rows = warehouse.query(
        context.warehouse, f"select distinct {column} from {table} where run_id = ?{where}",
        [context.run_id, *equals.values()],
    )
    return {value for (value,) in rows}


def generate_variant(
    context: RunContext, prompts: list[EvalPrompt], variant: str,
    log: Callable[[str], None] = print,
) -> int:
    """Generate the variant's answers for every prompt it has none for yet."""
    done = stored_values(context, "generations", "prompt_id", variant=variant)
    if len(done) >= len(prompts):
        log(f"{variant}: all {len(prompts)} generations already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)

    def land(batch: list[dict[str, Any]]) -> None:
        warehouse.write_rows(context.warehouse, "generations", [
            {"run_id": context.run_id, "variant": variant, "created_at": utc_now(), **row}
            for row in batch
        ])
        first = batch[0]
        log(f"{variant}: {len(batch)} generations landed (prompt "
            f"{first['batch_prompt_tokens_per_second']:.1f} tok/s, generation "
            f"{first['batch_generation_tokens_per_second']:.1f} tok/s, end to end "
            f"{first['batch_tokens_per_second']:.1f} tok/s)")

    return generate_answers(model, tokenizer, prompts, context.config.eval,
                            context.config.seed, on_rows=land, skip_ids=done)


def score_rows(
    run_id: str, prompts: dict[str, EvalPrompt], generations: list[tuple[str, str, str, str]],
) -> dict[str, list[dict[str, Any]]]:
    """Warehouse rows (scores, instruction_results, generation_failures) for generations given
    as (variant, prompt_id, output_text, finish_reason)."""
    tables: dict[str, list[dict[str, Any]]] = {
        "scores": [], "instruction_results": [], "generation_failures": [],
    }
    for variant, prompt_id, output, finish_reason in generations:
        result = score_generation(prompts[prompt_id], output, finish_reason)
        key = {"run_id": run_id, "variant": variant, "prompt_id": prompt_id}
        tables["scores"] += [{**key, "metric": m, "value": v} for m, v in result.scores.items()]
        tables["instruction_results"] += [
            {**key, "instruction_index": i, "instruction_id": r.instruction_id,
             "strict": r.strict, "loose": r.loose}
            for i, r in enumerate(result.instructions)
        ]
        tables["generation_failures"] += [
            {**key, "mode": f.mode, "instruction_id": f.instruction_id, "evidence": f.evidence}
            for f in result.failures
        ]
    return tables


def score_run(context: RunContext, prompts: list[EvalPrompt]) -> int:
    """Score every generation of the run, replacing earlier scores (re-scoring is idempotent)."""
    _, generations = warehouse.query(
        context.warehouse,
        "select variant, prompt_id, output_text, finish_reason from generations where run_id = ?",
        [context.run_id],
    )
    tables = score_rows(context.run_id, {p.prompt_id: p for p in prompts}, generations)
    for table, rows in tables.items():
        warehouse.replace_rows(context.warehouse, table, context.run_id, rows)
    return len(tables["scores"])


def capability_variant(
    context: RunContext, variant: str, log: Callable[[str], None] = print
) -> None:
    """Multiple-choice accuracy and held-out perplexity of one variant, into the warehouse."""
    settings = context.config.eval
    key = {"run_id": context.run_id, "variant": variant}
    loaded: tuple[Any, Any] | None = None
    for name in settings.capability_tasks:
        done = stored_values(context, "capability_items", "item_id", variant=variant, task=name)
        items = [i for i in load_task(name, settings.capability_limit) if i.item_id not in done]
        if not items:
            log(f"{variant} {name}: all items already in the warehouse")
            continue
        model, tokenizer = loaded = loaded or load_variant(context, variant)
        rows = score_items(model, tokenizer, items)
        warehouse.write_rows(context.warehouse, "capability_items",
                             [{**key, "task": name, **row} for row in rows])
        accuracy = sum(r["correct"] for r in rows) / len(rows)
        log(f"{variant} {name}: acc {accuracy:.3f} on {len(rows)} items")
    for corpus in settings.perplexity_corpora if settings.perplexity_limit else []:
        done = stored_values(context, "perplexity_items", "item_id", variant=variant,
                             corpus=corpus)
        passages = [p for p in PERPLEXITY_CORPORA[corpus](settings.perplexity_limit)
                    if p[0] not in done]
        if not passages:
            log(f"{variant} {corpus}: all passages already in the warehouse")
            continue
        model, tokenizer = loaded = loaded or load_variant(context, variant)
        rows = passage_nll(model, tokenizer, passages)
        warehouse.write_rows(context.warehouse, "perplexity_items",
                             [{**key, "corpus": corpus, **row} for row in rows])
        log(f"{variant} {corpus}: {sum(r['tokens'] for r in rows)} tokens scored")


def harness_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> int:
    """eval.harness_tasks run by lm-evaluation-harness itself on one variant: lm-eval's
    results into `harness_results`, its per-document results into the run folder
    (lm_eval/<variant>/<task>.jsonl). Tasks already stored for the run are not run again."""
    from lorascope.evaluation.harness import run_tasks  # imports lm-eval, which takes seconds

    settings = context.config.eval
    stored = stored_values(context, "harness_results", "task", variant=variant)
    tasks = [name for name in settings.harness_tasks if name not in stored]
    if not tasks:
        log(f"{variant} lm-eval: all tasks already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)
    result = run_tasks(model, tokenizer, tasks, settings.harness_limit,
                       settings.harness_include_path, settings.batch_size)
    folder = context.paths.lm_eval / variant
    folder.mkdir(parents=True, exist_ok=True)
    for name in {sample["task"] for sample in result.samples}:
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps(sample) + "\n" for sample in result.samples if sample["task"] == name
        ))
    warehouse.write_rows(context.warehouse, "harness_results",
                         [{"run_id": context.run_id, "variant": variant, **row}
                          for row in result.rows])
    for row in result.rows:
        stderr = "" if row["stderr"] is None else f" ± {row['stderr']:.3f}"
        log(f"{variant} lm-eval {row['task']} {row['metric']}: {row['value']:.3f}{stderr} "
            f"(n {row['n']})")
    return len(result.rows)
