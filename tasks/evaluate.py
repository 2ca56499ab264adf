"""Evaluate base and tuned: generate, score, measure capability preservation, gate regressions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.capability import PERPLEXITY_CORPORA, load_task, passage_nll, score_items
from lorascope.config import EvalConfig, RunConfig
from lorascope.context import RunContext
from lorascope.generation import EvalPrompt, generate_answers, load_eval_prompts
from lorascope.models import load_model
from lorascope.runinfo import run_dir, run_id_for, utc_now
from lorascope.scoring import score_generation

VARIANTS = ("base", "tuned")


class CapabilityRegressionError(RuntimeError):
    """The tuned model lost capability beyond the configured gate."""


def load_variant(context: RunContext, variant: str) -> tuple[Any, Any]:
    model = context.config.model
    return load_model(
        context.model_path,
        adapter_path=context.adapter_dir if variant == "tuned" else None,
        quantize_bits=model.quantize_bits, quantize_group_size=model.quantize_group_size,
        chat_template=model.chat_template,
    )


def run_prompts(context: RunContext) -> list[EvalPrompt]:
    settings = context.config.eval
    return load_eval_prompts(context.eval_prompts_path, settings.ifeval_prompts,
                             settings.ifbench_prompts)


def record_prompts(context: RunContext, prompts: list[EvalPrompt]) -> None:
    warehouse.write_rows(context.warehouse, "prompts", [
        {"run_id": context.run_id, "prompt_id": p.prompt_id, "domain": p.domain,
         "category": p.category, "messages": p.messages, "reference": p.reference,
         "instructions": p.instructions or None}
        for p in prompts
    ])


def generate_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> int:
    """Generate the variant's answers for every prompt it has none for yet."""
    prompts = run_prompts(context)
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


def score_run(context: RunContext) -> int:
    """Score every generation of the run (delete-then-insert, so re-scoring is idempotent)."""
    prompts = {p.prompt_id: p for p in run_prompts(context)}
    _, generations = warehouse.query(
        context.warehouse,
        "select variant, prompt_id, output_text, finish_reason from generations where run_id = ?",
        [context.run_id],
    )
    tables = score_rows(context.run_id, prompts, generations)
    for table, rows in tables.items():
        warehouse.delete_rows(context.warehouse, table, context.run_id)
        warehouse.write_rows(context.warehouse, table, rows)
    return len(tables["scores"])


def stored_ids(context: RunContext, table: str, variant: str, column: str, value: str) -> set:
    _, rows = warehouse.query(
        context.warehouse,
        f"select item_id from {table} where run_id = ? and variant = ? and {column} = ?",
        [context.run_id, variant, value],
    )
    return {item_id for (item_id,) in rows}


def capability_variant(
    context: RunContext, variant: str, log: Callable[[str], None] = print
) -> None:
    """Multiple-choice accuracy and held-out perplexity of one variant, into the warehouse.

    Items already stored for the run are not scored again, so a resumed run picks up here."""
    settings = context.config.eval
    key = {"run_id": context.run_id, "variant": variant}
    loaded: tuple[Any, Any] | None = None
    for name in settings.capability_tasks:
        done = stored_ids(context, "capability_items", variant, "task", name)
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
        done = stored_ids(context, "perplexity_items", variant, "corpus", corpus)
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
    from lorascope.harness import run_tasks  # imports lm-eval, which takes seconds

    settings = context.config.eval
    _, stored = warehouse.query(
        context.warehouse,
        "select distinct task from harness_results where run_id = ? and variant = ?",
        [context.run_id, variant],
    )
    tasks = [name for name in settings.harness_tasks if (name,) not in stored]
    if not tasks:
        log(f"{variant} lm-eval: all tasks already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)
    result = run_tasks(model, tokenizer, tasks, settings.harness_limit,
                       settings.harness_include_path, settings.batch_size)
    folder = context.run_dir / "lm_eval" / variant
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


def gate_verdicts(rows: list[dict[str, Any]], settings: EvalConfig) -> list[dict[str, Any]]:
    """The regression gate on capability_preservation rows: one verdict per task and metric.

    A task fails when its accuracy dropped by more than gate_max_drop and, with
    gate_require_ci, the upper end of the 95 % CI of the paired difference is below 0.
    """
    verdicts = []
    for row in rows:
        for metric, suffix in (("acc", "acc"), ("acc_norm", "acc_norm")):
            delta = row[f"delta_{suffix}"]
            low, high = row[f"delta_{suffix}_ci_low"], row[f"delta_{suffix}_ci_high"]
            supported = high is not None and high < 0
            failed = delta < -settings.gate_max_drop and (supported or not settings.gate_require_ci)
            verdicts.append({
                "run_id": row["run_id"], "task": row["task"], "metric": metric, "delta": delta,
                "ci_low": low, "ci_high": high, "max_drop": settings.gate_max_drop,
                "require_ci": settings.gate_require_ci, "failed": failed,
            })
    return verdicts


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def capability_gate(context: RunContext, log: Callable[[str], None] = print) -> str | None:
    """Record the gate's verdicts in `capability_gate`; return why it failed, or None."""
    settings = context.config.eval
    if settings.gate == "off":
        return None
    columns, rows = warehouse.query(
        context.warehouse, "select * from capability_preservation where run_id = ?",
        [context.run_id],
    )
    verdicts = gate_verdicts([dict(zip(columns, r, strict=True)) for r in rows], settings)
    warehouse.delete_rows(context.warehouse, "capability_gate", context.run_id)
    warehouse.write_rows(context.warehouse, "capability_gate", verdicts)
    failed = [v for v in verdicts if v["failed"]]
    if not failed:
        log(f"capability gate passed ({len(verdicts)} task metrics checked)")
        return None
    detail = "; ".join(
        f"{v['task']} {v['metric']} {_signed(v['delta'])} "
        f"(95 % CI {_signed(v['ci_low'])}..{_signed(v['ci_high'])})"
        for v in failed
    )
    message = (
        f"capability regression beyond eval.gate_max_drop={settings.gate_max_drop}"
        f"{' with the 95 % CI below 0' if settings.gate_require_ci else ''}: {detail}. "
        "See `lorascope sql --saved capability_gate`; eval.gate=mark only records it."
    )
    log(message)
    return message


def enforce_capability_gate(context: RunContext, message: str | None) -> None:
    if message and context.config.eval.gate == "fail":
        raise CapabilityRegressionError(message)


ADAPTER_FILES = ("adapter_config.json", "adapters.safetensors")


def check_adapter_folder(folder: Path) -> Path:
    """An mlx-lm adapter folder (`mlx_lm.lora --adapter-path`, or a run's adapters/)."""
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: not an mlx-lm adapter folder (missing {', '.join(missing)}). Give the "
            "--adapter-path folder of `mlx_lm.lora --train`, or a lorascope run's adapters/."
        )
    return folder.resolve()


def adapter_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:10]


def attach_adapter(context: RunContext, adapter: Path) -> None:
    """Point the run's adapters/ at `adapter`, so the tuned variant loads it."""
    link = context.adapter_dir
    if link.is_symlink() or link.exists():
        if link.resolve() != adapter:
            raise FileExistsError(f"{link} already holds other adapters than {adapter}")
        return
    link.symlink_to(adapter, target_is_directory=True)


def evaluate_adapter(
    config: RunConfig, adapter: Path | None, home: Path, log: Callable[[str], None] = print,
) -> RunContext:
    """Evaluate base vs base+adapter without training: a run of its own, named after the
    adapter's content hash, so evaluating the same adapter again resumes that run."""
    from tasks.prepare import finish_run, prepare_run
    from tasks.report import write_report

    if adapter is None:  # the adapters this config trained with `lorascope run`
        adapter = run_dir(run_id_for(config.name, config.config_hash()), home) / "adapters"
    adapter = check_adapter_folder(adapter)
    config = config.model_copy(update={"name": f"{config.name}-eval-{adapter_hash(adapter)}"})
    context = prepare_run(config, home, log)
    try:
        attach_adapter(context, adapter)
        for variant in VARIANTS:
            generate_variant(context, variant, log)
        score_run(context)
        for variant in VARIANTS:
            capability_variant(context, variant, log)
        if config.eval.harness_tasks:
            for variant in VARIANTS:
                harness_variant(context, variant, log)
        gate_failure = capability_gate(context, log)
        log(f"report: {write_report(context)}")
        enforce_capability_gate(context, gate_failure)
    except BaseException as error:
        finish_run(context, "failed", f"{type(error).__name__}: {error}")
        raise
    finish_run(context, "completed")
    return context


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


@task(name="lm-eval", cache_policy=NO_CACHE, task_run_name="lm-eval-{variant}")
def harness_task(context: RunContext, variant: str) -> int:
    return harness_variant(context, variant, log=get_run_logger().info)
