"""Evaluate base and tuned: generate, score, capability preservation, lm-eval, the gate."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lorascope.evaluation.comparisons import compare_run
from lorascope.evaluation.contamination import contamination_run
from lorascope.evaluation.gate import record_gate
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.evaluation.steps import (
    capability_variant,
    generate_variant,
    harness_variant,
    judge_run,
    run_prompts,
    score_run,
    test_loss_variant,
)
from lorascope.runs import RunContext, finish_evaluation, start_evaluation


@task(name="start-evaluation", cache_policy=NO_CACHE)
def start_evaluation_task(context: RunContext) -> None:
    start_evaluation(context)
    get_run_logger().info("evaluation %s of run %s", context.evaluation_id, context.run_id)


@task(name="finish-evaluation", cache_policy=NO_CACHE)
def finish_evaluation_task(context: RunContext, status: str, error: str | None = None) -> None:
    finish_evaluation(context, status, error)


@task(name="eval-prompts", cache_policy=NO_CACHE)
def prompts_task(context: RunContext) -> list[EvalPrompt]:
    prompts = run_prompts(context)
    get_run_logger().info("%d evaluation prompts", len(prompts))
    return prompts


@task(name="contamination", cache_policy=NO_CACHE)
def contamination_task(context: RunContext, prompts: list[EvalPrompt]) -> int:
    """Flag evaluation items whose text overlaps the training data (13-grams)."""
    return contamination_run(context, prompts, log=get_run_logger().info)


@task(name="generate", cache_policy=NO_CACHE, retries=1, task_run_name="generate-{variant}")
def generate_task(context: RunContext, prompts: list[EvalPrompt], variant: str) -> int:
    return generate_variant(context, prompts, variant, log=get_run_logger().info)


@task(name="score", cache_policy=NO_CACHE)
def score_task(context: RunContext, prompts: list[EvalPrompt]) -> int:
    count = score_run(context, prompts)
    get_run_logger().info("%d scores written", count)
    return count


@task(name="judge", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def judge_task(context: RunContext, prompts: list[EvalPrompt]) -> int:
    return judge_run(context, prompts, log=get_run_logger().info)


@task(name="test-loss", cache_policy=NO_CACHE, task_run_name="test-loss-{variant}")
def test_loss_task(context: RunContext, variant: str) -> int:
    return test_loss_variant(context, variant, log=get_run_logger().info)


@task(name="capability", cache_policy=NO_CACHE, task_run_name="capability-{variant}")
def capability_task(context: RunContext, variant: str) -> None:
    capability_variant(context, variant, log=get_run_logger().info)


@task(name="lm-eval", cache_policy=NO_CACHE, task_run_name="lm-eval-{variant}")
def harness_task(context: RunContext, variant: str) -> int:
    return harness_variant(context, variant, log=get_run_logger().info)


@task(name="compare", cache_policy=NO_CACHE)
def compare_task(context: RunContext) -> int:
    """Every base-vs-tuned comparison's test, interval, adjusted p and MDE."""
    return compare_run(context, log=get_run_logger().info)


@task(name="capability-gate", cache_policy=NO_CACHE)
def gate_task(context: RunContext) -> str | None:
    """Record the gate's verdicts; returns why it failed (the flow decides what follows)."""
    return record_gate(context, log=get_run_logger().info)
