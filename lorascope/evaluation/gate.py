"""The capability regression gate: did the tuned model lose general capability beyond what the
config allows? Verdicts land in `capability_gate`; eval.gate decides whether a failure only
marks the run or fails it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorascope import warehouse
from lorascope.config import EvalConfig
from lorascope.errors import LorascopeError
from lorascope.runs import RunContext


class CapabilityRegressionError(LorascopeError, RuntimeError):
    """The tuned model lost capability beyond the configured gate."""

    exit_code = 3


def gate_verdicts(rows: list[dict[str, Any]], settings: EvalConfig) -> list[dict[str, Any]]:
    """The regression gate on capability_preservation rows: one verdict per task and metric.

    A task fails when its accuracy dropped by more than gate_max_drop and, with
    gate_require_ci, the upper end of the 95 % CI of the paired difference is below 0.
    """
    verdicts = []
    for row in rows:
        for metric in ("acc", "acc_norm"):
            delta = row[f"delta_{metric}"]
            low, high = row[f"delta_{metric}_ci_low"], row[f"delta_{metric}_ci_high"]
            supported = high is not None and high < 0
            failed = delta < -settings.gate_max_drop and (supported or not settings.gate_require_ci)
            verdicts.append({
                "evaluation_id": row["evaluation_id"], "run_id": row["run_id"],
                "task": row["task"], "metric": metric, "delta": delta,
                "ci_low": low, "ci_high": high, "max_drop": settings.gate_max_drop,
                "require_ci": settings.gate_require_ci, "failed": failed,
            })
    return verdicts


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def failure_message(failed: list[dict[str, Any]], settings: EvalConfig) -> str:
    detail = "; ".join(
        f"{v['task']} {v['metric']} {_signed(v['delta'])} "
        f"(95 % CI {_signed(v['ci_low'])}..{_signed(v['ci_high'])})"
        for v in failed
    )
    return (
        f"capability regression beyond eval.gate_max_drop={settings.gate_max_drop}"
        f"{' with the 95 % CI below 0' if settings.gate_require_ci else ''}: {detail}. "
        "See `lorascope sql --saved capability_gate`; eval.gate=mark only records it."
    )


def record_gate(context: RunContext, log: Callable[[str], None] = print) -> str | None:
    """Record the gate's verdicts in `capability_gate`; return why it failed, or None."""
    settings = context.config.eval
    if settings.gate == "off":
        return None
    rows = warehouse.select_rows(context.warehouse, "capability_preservation",
                                 evaluation_id=context.evaluation_id)
    verdicts = gate_verdicts(rows, settings)
    warehouse.replace_rows(context.warehouse, "capability_gate", verdicts,
                           evaluation_id=context.evaluation_id)
    failed = [v for v in verdicts if v["failed"]]
    if not failed:
        log(f"capability gate passed ({len(verdicts)} task metrics checked)")
        return None
    message = failure_message(failed, settings)
    log(message)
    return message


def enforce_gate(settings: EvalConfig, failure: str | None) -> None:
    """Fail the run for a recorded gate failure when eval.gate is 'fail'."""
    if failure and settings.gate == "fail":
        raise CapabilityRegressionError(failure)
