"""Evaluation, the same steps for a trained run and for adapters trained elsewhere:
`evaluate_run` is the pipeline's second half, and `evaluate_adapter` the flow behind
`lorascope eval` (base vs base+adapter, no training)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lorascope.tasks.analysis import attention_task
from lorascope.tasks.evaluation import (
    capability_task,
    gate_task,
    generate_task,
    harness_task,
    prompts_task,
    score_task,
)
from lorascope.tasks.reporting import report_task
from lorascope.tasks.runs import finish_task, start_adapter_task
from prefect import flow

from lorascope.config import load_config
from lorascope.evaluation.gate import enforce_gate
from lorascope.evaluation.steps import VARIANTS
from lorascope.paths import lorascope_home
from lorascope.runs import RunContext


def evaluate_run(context: RunContext) -> None:
    """Generate, score and compare base and tuned, then report; the gate fails the run last,
    after the report that shows why."""
    settings = context.config.eval
    prompts = prompts_task(context)
    for variant in VARIANTS:
        generate_task(context, prompts, variant)
    score_task(context, prompts)
    for variant in VARIANTS:
        capability_task(context, variant)
    for variant in VARIANTS if settings.harness_tasks else ():
        harness_task(context, variant)
    if settings.attention_prompts:
        attention_task(context, prompts)
    gate_failure = gate_task(context)
    report_task(context)
    enforce_gate(settings, gate_failure)


@contextmanager
def finished(context: RunContext) -> Iterator[None]:
    """Mark the run completed when the block ends, failed (with the error) when it raises."""
    try:
        yield
    except BaseException as error:
        finish_task(context, "failed", f"{type(error).__name__}: {error}")
        raise
    finish_task(context, "completed")


@flow(name="lorascope-evaluate", log_prints=True)
def evaluate_adapter(config_path: str, adapter: str | None = None,
                     overrides: list[str] | None = None, home: str | None = None) -> str:
    """Evaluate base vs base+adapter without training; returns the evaluation run's id.

    `adapter` is an mlx-lm adapter folder (e.g. from `mlx_lm.lora --train`); by default the
    adapters the config trained with `lorascope run`."""
    config = load_config(config_path, overrides)
    context = start_adapter_task(config, Path(adapter) if adapter else None,
                                 Path(home) if home else lorascope_home())
    with finished(context):
        evaluate_run(context)
    return context.run_id
