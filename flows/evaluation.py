"""Evaluation, the same steps for every way a run gets evaluated: `evaluate_run` is the
pipeline's second half; `reevaluate` (`lorascope eval RUN_ID`) evaluates a trained run again
with other eval settings; `evaluate_adapter` (`lorascope eval CONFIG --adapter DIR`) evaluates
adapters trained elsewhere against their base."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import flow
from prefect.exceptions import TerminationSignal

from lorascope.config import load_config
from lorascope.errors import STOPPED_BY_SIGTERM
from lorascope.evaluation.gate import enforce_gate
from lorascope.evaluation.steps import VARIANTS
from lorascope.paths import RunPaths, lorascope_home
from lorascope.run_lock import run_lock
from lorascope.runs import RunContext, adapter_run_config, run_id_for
from lorascope.tasks.analysis import attention_task
from lorascope.tasks.evaluation import (
    capability_task,
    compare_task,
    contamination_task,
    finish_evaluation_task,
    gate_task,
    generate_task,
    harness_task,
    judge_task,
    prompts_task,
    score_task,
    start_evaluation_task,
    test_loss_task,
)
from lorascope.tasks.reporting import report_task
from lorascope.tasks.runs import finish_task, open_run_task, start_adapter_task


def evaluate_run(context: RunContext) -> None:
    """Generate, score and compare base and tuned, then report; the gate fails the
    evaluation last, after the report that shows why."""
    settings = context.config.eval
    start_evaluation_task(context)
    with finished(context, finish_evaluation_task):
        prompts = prompts_task(context)
        contamination_task(context, prompts)
        for variant in VARIANTS:
            generate_task(context, prompts, variant)
        score_task(context, prompts)
        if settings.judge:
            judge_task(context, prompts)
        for variant in VARIANTS if settings.test_loss else ():
            test_loss_task(context, variant)
        for variant in VARIANTS:
            capability_task(context, variant)
        for variant in VARIANTS if settings.harness_tasks else ():
            harness_task(context, variant)
        if settings.attention_prompts:
            attention_task(context, prompts)
        compare_task(context)
        gate_failure = gate_task(context)
        report_task(context)
        enforce_gate(settings, gate_failure)


def interruption(error: BaseException, run_id: str) -> str | None:
    """The `interrupted` message for a run stopped by a signal (Ctrl-C, or SIGTERM: Prefect
    raises TerminationSignal for it in a flow run, `lorascope` SystemExit(143) elsewhere);
    None for a failure."""
    if isinstance(error, KeyboardInterrupt):
        by = "Ctrl-C (SIGINT)"
    elif isinstance(error, TerminationSignal):
        by = signal.Signals(error.signal).name
    elif isinstance(error, SystemExit) and error.code == STOPPED_BY_SIGTERM:
        by = "SIGTERM"
    else:
        return None
    return (f"interrupted by {by}; `lorascope resume {run_id}` continues from its newest "
            "checkpoint")


@contextmanager
def finished(context: RunContext, finish: Callable[..., None] = finish_task) -> Iterator[None]:
    """Mark the run (or, with finish_evaluation_task, the evaluation) completed when the block
    ends, failed with the error when it raises, interrupted when a signal stops it."""
    try:
        yield
    except BaseException as error:
        stopped = interruption(error, context.run_id)
        if stopped:
            finish(context, "interrupted", stopped)
        else:
            finish(context, "failed", f"{type(error).__name__}: {error}")
        raise
    finish(context, "completed")


@flow(name="lorascope-reevaluate", flow_run_name="reevaluate/{run_id}", log_prints=True)
def reevaluate(run_id: str, overrides: list[str] | None = None, home: str | None = None) -> str:
    """Evaluate a trained run again, with its config's eval settings changed by `overrides`
    (eval.* only); nothing is trained. Returns the evaluation id."""
    state_home = Path(home) if home else lorascope_home()
    with run_lock(RunPaths.of(run_id, state_home).root, "lorascope eval"):
        context = open_run_task(run_id, state_home, overrides or [])
        evaluate_run(context)
    return context.evaluation_id


@flow(name="lorascope-evaluate-adapter", log_prints=True)
def evaluate_adapter(config_path: str, adapter: str | None = None,
                     overrides: list[str] | None = None, home: str | None = None) -> str:
    """Evaluate base vs base+adapter without training; returns the evaluation run's id.

    `adapter` is an mlx-lm adapter folder (e.g. from `mlx_lm.lora --train`); by default the
    adapters the config trained with `lorascope run`."""
    state_home = Path(home) if home else lorascope_home()
    config, adapter_dir = adapter_run_config(load_config(config_path, overrides),
                                             Path(adapter) if adapter else None, state_home)
    with run_lock(RunPaths.of(run_id_for(config), state_home).root, "lorascope eval"):
        context = start_adapter_task(config, adapter_dir, state_home)
        with finished(context):
            evaluate_run(context)
    return context.run_id

