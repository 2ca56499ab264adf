"""The whole pipeline flow, for real: tiny-mistral, built-in data, a Prefect server, DuckDB.

One run is shared by the tests of this module (it takes a while); each test reads one fact
of it from the warehouse, the run folder or the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(prefect_harness, tmp_path_factory, tiny_mistral_dir, session_home):
    from lorascope.flows.pipeline import pipeline

    home = home_with_tiny_mistral(tmp_path_factory.mktemp("pipeline_home"), tiny_mistral_dir)
    config = Path(tmp_path_factory.mktemp("config")) / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    state = pipeline(str(config), home=str(home), return_state=True)
    return {"home": home, "config": config, "state": state, "run_id": state.result()}


def rows(run: dict, sql: str) -> list[tuple]:
    return warehouse.query(warehouse_path(run["home"]), sql, [run["run_id"]])[1]


def test_the_flow_run_completes_and_the_run_is_recorded_as_completed(finished_run) -> None:
    assert finished_run["state"].is_completed()
    ((status, seed, data_hash, code_version),) = rows(
        finished_run, "select status, seed, data_hash, code_version from runs where run_id = ?"
    )
    assert (status, seed) == ("completed", 0)
    assert len(data_hash) == 16 and code_version.startswith("0.1.0")


def test_every_eval_prompt_has_a_base_and_a_tuned_generation(finished_run) -> None:
    counts = dict(rows(finished_run, "select variant, count(*) from generations "
                                     "where run_id = ? group by variant"))
    ((prompts,),) = rows(finished_run, "select count(*) from prompts where run_id = ?")
    assert prompts > 0
    assert counts == {"base": prompts, "tuned": prompts}
    throughput = rows(finished_run, "select count(*) from generations where run_id = ? and "
                                    "batch_prompt_tokens_per_second > 0 and "
                                    "batch_generation_tokens_per_second > 0")
    assert throughput == [(2 * prompts,)]


def test_generations_are_scored_and_capability_items_recorded_for_both_models(
    finished_run,
) -> None:
    scored = dict(rows(finished_run, "select variant, count(distinct prompt_id) from scores "
                                     "where run_id = ? group by variant"))
    assert scored["base"] == scored["tuned"] > 0
    items = dict(rows(finished_run, "select variant, count(*) from capability_items "
                                    "where run_id = ? group by variant"))
    assert items == {"base": 6, "tuned": 6}


def test_training_metrics_cover_every_reported_step(finished_run) -> None:
    steps = [s for (s,) in rows(finished_run, "select step from train_metrics where run_id = ? "
                                              "and split = 'train' order by step")]
    assert steps == [2, 4, 6]


def test_the_report_is_written_with_the_run_facts(finished_run) -> None:
    report = finished_run["home"] / "runs" / finished_run["run_id"] / "report.md"
    text = report.read_text()
    assert text.startswith(f"# lorascope report: {finished_run['run_id']}")
    assert "## Capability preservation" in text and "## Training curve" in text
    assert "## Attention shift by layer" in text and "## Generation throughput" in text


def test_the_run_folder_records_config_seed_data_hash_and_code_version(finished_run) -> None:
    folder = finished_run["home"] / "runs" / finished_run["run_id"]
    info = json.loads((folder / "run.json").read_text())
    assert {"config_hash", "seed", "data_hash", "code_version"} <= set(info)
    assert (folder / "config.yaml").is_file()


def test_adapters_are_in_mlx_lm_layout_and_load_in_mlx_lm(finished_run, tiny_mistral_dir) -> None:
    from mlx_lm import load

    adapters = finished_run["home"] / "runs" / finished_run["run_id"] / "adapters"
    config = json.loads((adapters / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["lora_parameters"]["rank"] == 4
    model, _ = load(str(tiny_mistral_dir), adapter_path=str(adapters))
    lora_layers = [name for name, _ in model.named_modules() if "lora" in type(_).__name__.lower()]
    assert lora_layers


def test_lorascope_sql_answers_from_the_warehouse(finished_run) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lorascope.cli", "sql", "select count(*) as n from generations"],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "LORASCOPE_HOME": str(finished_run["home"])},
    )
    ((count,),) = rows(finished_run, "select count(*) from generations where run_id = ?")
    assert f"| {count} |" in result.stdout


def test_running_the_same_config_again_resumes_without_duplicating_rows(finished_run) -> None:
    from lorascope.flows.pipeline import pipeline

    def counts() -> dict[str, int]:
        return {
            table: rows(finished_run, f"select count(*) from {table} where run_id = ?")[0][0]
            for table in ("generations", "scores", "train_metrics", "capability_items")
        }

    before = counts()
    again = pipeline(str(finished_run["config"]), home=str(finished_run["home"]))
    assert again == finished_run["run_id"]
    assert counts() == before


def test_attention_of_base_and_tuned_is_compared_per_layer_and_head(finished_run) -> None:
    ((prompts, layers, heads, negative),) = rows(
        finished_run,
        "select count(distinct prompt_id), count(distinct layer), count(distinct head), "
        "count(*) filter (where js_divergence < 0) from attention_heads where run_id = ?",
    )
    assert (prompts, layers, heads, negative) == (8, 2, 4, 0)
    shift = rows(finished_run, "select domain, layer from attention_shift where run_id = ? "
                               "order by domain, layer")
    assert {domain for domain, _ in shift} == {"in_domain", "out_of_domain"}
