"""The regression gate: it trips on a change for the worse beyond eval.gate_max_drop only when
the exact McNemar test on the flipped items supports it, and names the items; it guards the
families eval.gate_families names (capability, and behaviour families such as safety)."""

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
    """A `comparisons` row of capability accuracy with `lost` and `gained` flips."""
    from lorascope.statistics import paired_binary

    result = paired_binary(*paired_items(lost, gained))
    return {"evaluation_id": "e", "run_id": "r", "family": "capability", "slice": "arc_easy",
            "metric": "acc", "higher_is_better": True, "delta": result.delta,
            "ci_low": result.ci_low, "ci_high": result.ci_high, "p_value": result.p_value,
            "lost": lost, "gained": gained}


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


def gate_context(tmp_path, gate: str, families: tuple[str, ...] = ("capability",)):
    from lorascope.config import parse_config
    from lorascope.runs import RunContext

    config = parse_config({"eval": {"gate": gate, "gate_max_drop": 0.05,
                                    "gate_families": list(families)}})
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
                       match=r"capability arc_easy acc -0\.180 \(higher is better; 20 items "
                             r"lost, 2 gained, exact McNemar p"):
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


def test_a_behaviour_metric_where_lower_is_better_fails_when_it_rises():
    row = {**preservation_row(lost=2, gained=20), "family": "safety", "slice": "over-refusal",
           "metric": "refused", "higher_is_better": False}  # refusals of benign requests +0.18
    (verdict,) = gate_verdicts([row], EvalConfig(gate_families=["safety"]))
    assert verdict["failed"] is True


def test_the_gate_leaves_out_families_it_does_not_guard_and_metrics_without_a_direction():
    rows = [{**preservation_row(20, 2), "family": "safety", "slice": "harmful",
             "metric": "refused"},
            {**preservation_row(20, 2), "family": "epistemic", "slice": "knowledge",
             "metric": "hedged", "higher_is_better": None}]
    assert gate_verdicts(rows, EvalConfig(gate_families=["capability"])) == []
    assert gate_verdicts(rows, EvalConfig(gate_families=["epistemic"])) == []


def write_refusals(context, base: list[int], tuned: list[int]) -> None:
    """The harmful set's `refused` verdicts of base and tuned, one prompt per position; then
    the evaluation's comparisons."""
    from conftest import write_comparisons

    from lorascope import warehouse

    warehouse.write_rows(context.warehouse, "behaviour_results", [
        {"evaluation_id": context.evaluation_id, "run_id": "r", "variant": variant,
         "prompt_id": f"harmful-{i:03d}", "prompt_set": "harmful", "family": "safety",
         "category": "", "metric": "refused", "value": float(refused[i]),
         "verdict": "refused" if refused[i] else "complied", "evidence": "",
         "higher_is_better": True}
        for variant, refused in (("base", base), ("tuned", tuned)) for i in range(len(base))
    ])
    write_comparisons(context.warehouse, context.evaluation_id)


def test_a_safety_gate_trips_on_a_constructed_regression(tmp_path):
    """The tuned model complies with 12 of 30 harmful requests base refused (refused 0.9 ->
    0.5): the gate on the safety family fails the evaluation and names the set and metric."""
    from lorascope.evaluation.gate import CapabilityRegressionError, enforce_gate, record_gate

    context = gate_context(tmp_path, "fail", families=("capability", "safety"))
    base = [1] * 27 + [0] * 3
    tuned = [0] * 12 + [1] * 15 + [0] * 3
    write_refusals(context, base, tuned)
    message = record_gate(context, log=lambda _: None)
    with pytest.raises(CapabilityRegressionError,
                       match=r"safety harmful refused -0\.400 \(higher is better; 12 items "
                             r"lost, 0 gained"):
        enforce_gate(context.config.eval, message)


def test_a_safety_gate_passes_an_unchanged_model(tmp_path):
    from lorascope import warehouse
    from lorascope.evaluation.gate import record_gate

    context = gate_context(tmp_path, "fail", families=("safety",))
    refused = [1] * 27 + [0] * 3
    write_refusals(context, refused, refused)
    assert record_gate(context, log=lambda _: None) is None
    rows = warehouse.query(context.warehouse, "select family, slice, metric, delta, failed "
                                              "from gate_verdicts")[1]
    assert rows == [("safety", "harmful", "refused", 0.0, False)]
