"""Experiments as flows (a rank sweep on tiny-mistral) and the pipeline as a deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import home_with_tiny_mistral

from lorascope import warehouse
from lorascope.config import ConfigError, load_config
from lorascope.experiments import experiment_id_for, member_name, member_overrides
from lorascope.paths import warehouse_path


def test_member_runs_get_readable_names_and_typed_overrides(tiny_config) -> None:
    assert member_name("demo", "lora.rank", 16) == "demo-rank16"
    assert member_name("demo", "data.source", "/data/legal/") == "demo-source-legal"
    config = load_config(tiny_config(), member_overrides("lora.rank", 16, "demo-rank16"))
    assert (config.lora.rank, config.name) == (16, "demo-rank16")


def test_experiment_id_is_stable_for_the_same_sweep_and_differs_otherwise() -> None:
    a = experiment_id_for("demo", "abc", "lora.rank", [4, 8])
    assert a == experiment_id_for("demo", "abc", "lora.rank", [4, 8])
    assert a != experiment_id_for("demo", "abc", "lora.rank", [4, 16])
    assert a.startswith("demo-sweep-rank-")


@pytest.mark.slow
def test_a_rank_sweep_runs_one_pipeline_per_value_and_compares_them(
    prefect_harness, tiny_config, tiny_mistral_dir, tmp_path: Path
) -> None:
    from lorascope.flows.experiments import sweep

    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    config = tiny_config(train={"iters": 2, "save_every": 2, "steps_per_report": 2},
                         eval={"attention_prompts": 0, "capability_limit": 4})
    experiment_id = sweep(str(config), "lora.rank", [2, 4], home=str(home))

    path = warehouse_path(home)
    _, members = warehouse.query(
        path, "select e.value, e.lora_rank, e.lora_scale, r.status from experiments e "
              "join runs r using (run_id) where experiment_id = ? order by position",
        [experiment_id])
    # alpha 8 is fixed, so scale = alpha / rank halves as the rank doubles (PEFT's convention).
    assert members == [("2", 2, 4.0, "completed"), ("4", 4, 2.0, "completed")]
    _, kinds = warehouse.query(
        path, "select value, kind, count(*) from experiment_results where experiment_id = ? "
              "group by value, kind order by value, kind", [experiment_id])
    assert {(v, k) for v, k, n in kinds if n > 0} >= {
        ("2", "capability"), ("2", "goal"), ("4", "capability"), ("4", "goal")}
    report = home / "experiments" / experiment_id / "report.md"
    assert "## Results by lora.rank" in report.read_text()


def test_a_sweep_over_an_unknown_parameter_fails_before_any_run(tiny_config, tmp_path) -> None:
    from lorascope.flows.experiments import sweep

    with pytest.raises(ConfigError, match="lora.rnak"):
        sweep.fn(str(tiny_config()), "lora.rnak", [2], home=str(tmp_path))
    assert not warehouse_path(tmp_path).exists()


def test_the_served_deployment_runs_the_config_on_its_cron_schedule(tiny_config) -> None:
    from lorascope.flows.pipeline import deployment_for

    config = tiny_config()
    deployment = deployment_for(str(config), cron="0 1 * * *", timezone="Europe/Berlin")
    assert deployment.name == "tiny"
    assert deployment.parameters == {"config_path": str(config.resolve())}
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 1 * * *", "Europe/Berlin")


def test_a_deployment_without_cron_has_no_schedule(tiny_config) -> None:
    from lorascope.flows.pipeline import deployment_for

    assert not deployment_for(str(tiny_config())).schedules


def test_serve_also_offers_re_evaluation_of_a_trained_run() -> None:
    from lorascope.flows.pipeline import reevaluation_deployment

    deployment = reevaluation_deployment()
    assert deployment.name == "reevaluate" and not deployment.schedules
    assert deployment._parameter_openapi_schema.required == ["run_id"]  # asked for in the UI
