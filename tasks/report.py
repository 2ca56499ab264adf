"""Write the run's Markdown report from the warehouse views."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

import warehouse
from lorascope.blas import describe_blas
from lorascope.context import RunContext
from lorascope.report import Section, render_report
from tasks.evaluate import capability_gate, enforce_capability_gate

# (title, intro, SQL with one `?` for the run id)
SECTIONS = (
    ("Tuning goal: base vs tuned",
     "Mean score per metric and domain. `format_ok`: the answer follows the house format "
     "(`Answer:` line, then `Explanation:`); `answer_correct`: the reference answer is in that "
     "`Answer:` line; `answer_in_output`: anywhere in the output. Out-of-domain prompts test "
     "whether the tuning transfers.",
     "select * exclude (run_id) from goal_improvement where run_id = ? order by domain, metric"),
    ("Instruction following (IFEval, IFBench)",
     "lm-evaluation-harness's IFEval checkers on the IFEval-style prompts and IFBench's own "
     "checkers on the IFBench-style ones (`family`): strict on the "
     "response as is, loose after dropping its first/last line or markdown asterisks; "
     "`prompt` level needs every instruction of a prompt followed.",
     "select * exclude (run_id) from instruction_following where run_id = ? "
     "order by family desc, level desc, instruction_id = '(all)' desc, instruction_id"),
    ("Capability preservation",
     "Log-likelihood multiple choice (lm-evaluation-harness's acc / acc_norm) on the same "
     "questions for both models; the CI is of the paired per-question difference.",
     "select * exclude (run_id) from capability_preservation where run_id = ? order by task"),
    ("lm-eval harness",
     "eval.harness_tasks run by lm-evaluation-harness itself on both models (its own acc / "
     "acc_norm / ...); the CI treats the two results as independent (lm-eval reports no "
     "per-document pairing), so it is wider than the paired one above.",
     "select * exclude (run_id) from harness_deltas where run_id = ? order by task, metric"),
    ("Perplexity on held-out text",
     "Perplexity of both models on the same general-text passages; the CI is of the paired "
     "per-passage change in NLL per token (positive: tuned finds the text less likely).",
     "select * exclude (run_id) from perplexity_preservation where run_id = ? order by corpus"),
    ("Capability gate",
     "A task fails when its accuracy dropped by more than the allowed amount (and, if "
     "required, the 95 % CI of the drop excludes 0).",
     "select * exclude (run_id) from capability_gate where run_id = ? "
     "order by failed desc, task, metric"),
    ("Failure modes",
     "Generations flagged per failure mode and prompt category (one generation can show "
     "several); `instruction_id` names the instruction a format violation broke.",
     "select * exclude (run_id) from failure_modes where run_id = ? "
     "order by delta desc, mode, instruction_id, category"),
    ("Attention shift by layer",
     "Jensen-Shannon divergence (nats, 0..ln 2) between base and tuned attention on the same "
     "prompt tokens, mean and largest over heads, and the change in attention entropy "
     "(negative = sharper). Layers with adapters should move most.",
     "select domain, layer, prompts, mean_js_divergence, max_js_divergence, base_entropy, "
     "entropy_delta, base_bos_mass, tuned_bos_mass from attention_shift where run_id = ? "
     "order by domain, layer"),
    ("Training curve",
     "Loss per reported step (train: mean since the previous report; valid: held-out split).",
     "select step, split, loss, learning_rate, tokens_per_second, peak_memory_gb "
     "from train_metrics where run_id = ? order by step, split"),
    ("Generation throughput",
     "Per generated batch, as mlx-lm's batch_generate reports it: prompt tokens/s (prefill), "
     "generation tokens/s (generated tokens over the time outside prefill), end-to-end "
     "tokens/s, the slowest prompt's latency and the process's peak memory.",
     "select * exclude (run_id) from generation_throughput where run_id = ? "
     "order by variant, batch_index"),
    ("Regressions",
     "Prompts and metrics the base model passed and the tuned model failed.",
     "select * exclude (run_id) from regressions where run_id = ? limit 20"),
    ("Examples",
     "The first prompts of each domain, base and tuned side by side.",
     "select p.domain, p.prompt_id, b.output_text as base_output, t.output_text as tuned_output "
     "from prompts p join generations b on b.run_id = p.run_id and b.prompt_id = p.prompt_id "
     "and b.variant = 'base' join generations t on t.run_id = p.run_id "
     "and t.prompt_id = p.prompt_id and t.variant = 'tuned' where p.run_id = ? "
     "qualify row_number() over (partition by p.domain order by p.prompt_id) <= 3 "
     "order by p.domain, p.prompt_id"),
)


def write_report(context: RunContext) -> Path:
    sections = []
    for title, intro, sql in SECTIONS:
        columns, rows = warehouse.query(context.warehouse, sql, [context.run_id])
        shown_sql = sql.replace("?", f"'{context.run_id}'")
        sections.append(Section(title, intro, columns, rows, shown_sql))
    config = context.config
    facts = {
        "run id": context.run_id,
        "model": f"{config.model.source} ({context.model_path})",
        "fine-tuning": (
            f"none in this run: `lorascope eval` of {context.adapter_dir.resolve()}"
            if context.adapter_dir.is_symlink() else
            f"{config.lora.fine_tune_type}, rank {config.lora.rank}, "
            f"scale {config.lora.effective_scale}, {config.train.iters} steps "
            f"× batch {config.train.batch_size}, lr {config.train.learning_rate}"
        ),
        "data": f"{config.data.source} (hash {context.data_hash})",
        "seed": config.seed,
        "config hash": config.config_hash(),
        "code version": context.code_version,
        "adapters": context.adapter_dir,
        "compute": describe_blas(),
        "warehouse": context.warehouse,
    }
    text = render_report(f"lorascope report: {context.run_id}", facts, sections)
    context.report_path.write_text(text)
    return context.report_path


@task(name="report", cache_policy=NO_CACHE)
def report_task(context: RunContext) -> Path:
    """Record the capability gate, write the report, then fail if the gate says so."""
    gate_failure = capability_gate(context, log=get_run_logger().info)
    path = write_report(context)
    create_markdown_artifact(path.read_text(), key="run-report",
                             description=f"lorascope report for {context.run_id}")
    enforce_capability_gate(context, gate_failure)
    return path
