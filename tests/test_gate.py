"""The capability regression gate: it trips on a drop beyond eval.gate_max_drop only when the
exact McNemar test on the flipped items supports it, and names the items."""

from __future__ import annotations

import pytest

from lorascope.config import EvalConfig
from lorascope.evaluation.gate import gate_verdicts


def paired_items(lost: int, gained: int, n: int = 100) -> tuple[list[int], list[int]]:
    """n paired pass/fail items: `lost` base right and tuned wrong, `gained` the reverse, the
    rest right for both."""
    base = [1] * lost + [0] * gained + [1] * (n - lost - gained)
    tuned = [0] * lost + [1] * gained + [1] * (n - lost - gained)
    return base, tuned


def preservation_row(lost: int, gained: int) -> dict:
    from lorascope.statistics import paired_binary

    result = paired_binary(*paired_items(lost, gained))
    return {"evaluation_id": "e", "run_id": "r", "task": "arc_easy", "metric": "acc",
            "delta": result.delta, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "p_value": result.p_value, "lost": lost, "gained": gained}


@pytest.mark.parametrize(("lost", "gained", "require_ci", "failed"), [
    (7, 1, True, False),    # delta -0.06 beyond the allowed 0.05, but McNemar p = 0.070
    (20, 2, True, True),    # delta -0.18, p < 0.001
    (7, 1, False, True),    # the drop alone counts when significance is not required
    (4, 0, True, False),    # a significant-looking but allowed drop (-0.04)
    (1, 11, True, False),   # an improvement
])
def test_gate_fails_a_task_only_beyond_the_allowed_drop_on_the_exact_test(
    lost, gained, require_ci, failed
):
    settings = EvalConfig(gate_max_drop=0.05, gate_require_ci=require_ci)
    (verdict,) = gate_verdicts([preservation_row(lost, gained)], settings)
    assert (verdict["lost"], verdict["gained"], verdict["failed"]) == (lost, gained, failed)


def test_gate_on_7_lost_1_gained_of_100_sees_mcnemars_p_of_0_070():
    (verdict,) = gate_verdicts([preservation_row(7, 1)], EvalConfig())
    assert verdict["delta"] == pytest.approx(-0.06)
    assert verdict["p_value"] == pytest.approx(0.0703, abs=1e-4)
    assert verdict["failed"] is False


def gate_context(tmp_path, gate: str):
    from lorascope.config import parse_config
    from lorascope.runs import RunContext

    config = parse_config({"eval": {"gate": gate, "gate_max_drop": 0.05}})
    return RunContext(run_id="r", config=config, home=tmp_path, model_path=tmp_path,
                      data_hash="", code_version="")


def write_drop(context, lost: int = 20, gained: int = 2):
    """100 arc_easy items, `lost` of them flipped right -> wrong, `gained` the reverse (acc);
    acc_norm unchanged; then the evaluation's comparisons."""
    from conftest import write_comparisons

    from lorascope import warehouse

    base, tuned = paired_items(lost, gained)
    warehouse.write_rows(context.warehouse, "capability_items", [
        {"evaluation_id": context.evaluation_id, "run_id": "r", "variant": v,
         "task": "arc_easy", "item_id": str(i), "correct": bool(correct[i]),
         "correct_norm": True}
        for v, correct in (("base", base), ("tuned", tuned)) for i in range(100)
    ])
    write_comparisons(context.warehouse, context.evaluation_id)


def test_gate_fail_records_the_verdicts_then_raises_naming_task_delta_and_flips(tmp_path):
    from lorascope import warehouse
    from lorascope.evaluation.gate import CapabilityRegressionError, enforce_gate, record_gate

    context = gate_context(tmp_path, "fail")
    write_drop(context)
    message = record_gate(context, log=lambda _: None)
    with pytest.raises(CapabilityRegressionError,
                       match=r"arc_easy acc -0\.180 \(20 items lost, 2 gained, exact McNemar p"):
        enforce_gate(context.config.eval, message)
    rows = warehouse.query(context.warehouse, "select task, metric, lost, gained, failed "
                                              "from capability_gate order by metric")[1]
    assert rows == [("arc_easy", "acc", 20, 2, True), ("arc_easy", "acc_norm", 0, 0, False)]
    flips = warehouse.query(context.warehouse, "select flip, count(*) from capability_flips "
                                               "where metric = 'acc' group by flip order by flip")
    assert flips[1] == [("gained", 2), ("lost", 20)]


def test_gate_passes_7_lost_1_gained_of_100_at_the_defaults(tmp_path):
    from lorascope.evaluation.gate import record_gate

    context = gate_context(tmp_path, "fail")
    write_drop(context, lost=7, gained=1)
    assert record_gate(context, log=lambda _: None) is None


def test_gate_mark_records_the_failure_without_raising(tmp_path):
    from lorascope.evaluation.gate import enforce_gate, record_gate

    context = gate_context(tmp_path, "mark")
    write_drop(context)
    message = record_gate(context, log=lambda _: None)
    assert "eval.gate_max_drop=0.05" in message
    enforce_gate(context.config.eval, message)
