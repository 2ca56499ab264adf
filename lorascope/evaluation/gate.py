"""The regression gate: did the tuned model get worse, beyond what the config allows, on a
family of comparisons the config guards (eval.gate_families: capability accuracy, and any
behaviour family: epistemic, sycophancy, safety, robustness)? Verdicts land in
`gate_verdicts` (the capability ones also in the view `capability_gate`); eval.gate decides
whether a failure only marks the run or fails it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lorascope import warehouse
from lorascope.config import EvalConfig
from lorascope.errors import LorascopeError
from lorascope.runs import RunContext


class CapabilityRegressionError(LorascopeError, RuntimeError):
    """The tuned model got worse on a gated family beyond the configured gate."""

    exit_code = 3


def gate_verdicts(rows: list[dict[str, Any]], settings: EvalConfig) -> list[dict[str, Any]]:
    """The regression gate on `comparisons` rows: one verdict per comparison of a gated
    family that has a good direction (higher_is_better true or false).

    A comparison fails when it moved the bad way by more than gate_max_drop and, with
    gate_require_ci, the change is significant: the exact McNemar test on the items one
    variant got right and the other wrong gives p < eval.statistics.alpha. (A normal interval
    of the paired difference is too narrow when few items flip, and tripped on noise.)
    """
    alpha = settings.statistics.alpha
    verdicts = []
    for row in rows:
        if row["family"] not in settings.gate_families or row["higher_is_better"] is None:
            continue
        delta, p_value = row["delta"], row["p_value"]
        worsening = None if delta is None else (-delta if row["higher_is_better"] else delta)
        significant = p_value is not None and p_value < alpha
        failed = (worsening is not None and worsening > settings.gate_max_drop
                  and (significant or not settings.gate_require_ci))
        verdicts.append({
            "evaluation_id": row["evaluation_id"], "run_id": row["run_id"],
            "family": row["family"], "metric": row["metric"], "slice": row["slice"],
            "higher_is_better": row["higher_is_better"], "delta": delta,
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


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _direction(verdict: dict[str, Any]) -> str:
    return "higher is better" if verdict["higher_is_better"] else "lower is better"


def failure_message(failed: list[dict[str, Any]], settings: EvalConfig) -> str:
    detail = "; ".join(
        f"{v['family']} {v['slice']} {v['metric']} {_signed(v['delta'])} ({_direction(v)}; "
        f"{_items(v['lost'])} lost, {v['gained']} gained, exact McNemar p = {_p(v['p_value'])})"
        for v in failed
    )
    significance = (f" and significant at alpha {settings.statistics.alpha}"
                    if settings.gate_require_ci else "")
    return (
        f"regression beyond eval.gate_max_drop={settings.gate_max_drop}{significance} "
        f"(eval.gate_families: {', '.join(settings.gate_families)}): {detail}. See "
        "`lorascope sql --saved gate_verdicts` (capability's flipped items: `lorascope sql "
        "--saved capability_flips`; behaviour's: the view behaviour_items); eval.gate=mark "
        "only records it."
    )


def record_gate(context: RunContext, log: Callable[[str], None] = print) -> str | None:
    """Record the gate's verdicts in `gate_verdicts`; return why it failed, or None."""
    settings = context.config.eval
    if settings.gate == "off":
        return None
    rows = warehouse.select_rows(context.warehouse, "comparisons",
                                 evaluation_id=context.evaluation_id)
    verdicts = gate_verdicts(rows, settings)
    warehouse.replace_rows(context.warehouse, "gate_verdicts", verdicts,
                           evaluation_id=context.evaluation_id)
    failed = [v for v in verdicts if v["failed"]]
    if not failed:
        log(f"regression gate passed ({len(verdicts)} comparisons of "
            f"{', '.join(settings.gate_families)} checked)")
        return None
    message = failure_message(failed, settings)
    log(message)
    return message


def enforce_gate(settings: EvalConfig, failure: str | None) -> None:
    """Fail the run for a recorded gate failure when eval.gate is 'fail'."""
    if failure and settings.gate == "fail":
        raise CapabilityRegressionError(failure)
