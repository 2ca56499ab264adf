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
    gate_require_ci, the drop is significant: the exact McNemar test on the items one variant
    got right and the other wrong gives p < eval.statistics.alpha. (A normal interval of the
    paired difference is too narrow when few items flip, and tripped on noise.)
    """
    alpha = settings.statistics.alpha
    verdicts = []
    for row in rows:
        delta, p_value = row["delta"], row["p_value"]
        significant = p_value is not None and p_value < alpha
        failed = (delta is not None and delta < -settings.gate_max_drop
                  and (significant or not settings.gate_require_ci))
        verdicts.append({
            "evaluation_id": row["evaluation_id"], "run_id": row["run_id"],
            "task": row["task"], "metric": row["metric"], "delta": delta,
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "p_value": p_value,
            "alpha": alpha, "lost": row["lost"], "gained": row["gained"],
            "max_drop": settings.gate_max_drop, "require_ci": settings.gate_require_ci,
            "failed": failed,
        })
    return verdicts


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def failure_message(failed: list[dict[str, Any]], settings: EvalConfig) -> str:
    detail = "; ".join(
        f"{v['task']} {v['metric']} {_signed(v['delta'])} "
        f"({v['lost']} items lost, {v['gained']} gained, exact McNemar p = {_p(v['p_value'])})"
        for v in failed
    )
    significance = (f" and significant at alpha {settings.statistics.alpha}"
                    if settings.gate_require_ci else "")
    return (
        f"capability regression beyond eval.gate_max_drop={settings.gate_max_drop}"
        f"{significance}: {detail}. See `lorascope sql --saved capability_gate` (the flipped "
        "items: `lorascope sql --saved capability_flips`); eval.gate=mark only records it."
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
