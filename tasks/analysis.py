"""Compare the attention patterns of base and tuned on the same evaluation prompts."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lorascope.analysis.steps import analyze_attention
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.runs import RunContext


@task(name="attention", cache_policy=NO_CACHE)
def attention_task(context: RunContext, prompts: list[EvalPrompt]) -> int:
    return analyze_attention(context, prompts, log=get_run_logger().info)
