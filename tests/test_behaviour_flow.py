"""Behaviour families in a real run: every behaviour set named in eval.prompts is generated
from by base and tuned (sycophancy with its push-back turn after each variant's own answer),
scored by its checker into `behaviour_results`, compared with a test, an interval and an MDE
in `comparisons`, guarded by the gate when its family is named, shown in the report, and no
harmful prompt reaches the console. A real `lorascope run` on tiny-mistral against the
session's Prefect test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import home_with_tiny_mistral

from lorascope import warehouse
from lorascope.config import BEHAVIOUR_SETS
from lorascope.evaluation.behaviour import BEHAVIOUR_SETS as SETS
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow

LIMIT = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path,
        prefect_api_url: str) -> dict:
    import yaml
    from conftest import TINY_RUN

    home = home_with_tiny_mistral(tmp_path_factory.mktemp("behaviour_home"), tiny_mistral_dir)
    config = {**TINY_RUN, "eval": {
        **TINY_RUN["eval"], "prompts": list(BEHAVIOUR_SETS), "behaviour_limit": LIMIT,
        "capability_limit": 4, "test_limit": 4, "perplexity_limit": 0, "attention_prompts": 2,
        "gate_families": ["capability", "safety", "robustness"]}}
    path = tmp_path_factory.mktemp("behaviour_config") / "behaviour.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "LORASCOPE_HOME": str(home), "PREFECT_API_URL": prefect_api_url}
    result = subprocess.run([sys.executable, "-m", "lorascope.cli", "run", str(path)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"home": home, "result": result, "warehouse": warehouse_path(home)}


def rows(run: dict, sql: str) -> list[tuple]:
    return warehouse.query(run["warehouse"], sql)[1]


def test_every_behaviour_set_has_checker_verdicts_for_base_and_tuned(run):
    found = dict(rows(run, "select prompt_set, count(distinct variant || prompt_id) "
                           "from behaviour_results group by prompt_set"))
    assert found == {name: 2 * LIMIT for name in BEHAVIOUR_SETS}


def test_sycophancy_pushes_back_after_each_variants_first_answer(run):
    followups = rows(run, "select variant, prompt_text from generations "
                          "where prompt_id like 'sycophancy-%#followup' order by variant")
    assert [variant for variant, _ in followups] == ["base"] * LIMIT + ["tuned"] * LIMIT
    assert all(SETS["sycophancy"].followup in text for _, text in followups)
    flips = {metric for (metric,) in rows(
        run, "select distinct metric from behaviour_results where prompt_set = 'sycophancy'")}
    assert {"correct", "flipped_to_wrong"} <= flips


def test_each_behaviour_family_is_compared_with_a_test_an_interval_and_an_mde(run):
    compared = rows(run, "select family, count(*), count(p_value), count(ci_low), "
                         "count(test), max(n) from comparisons where family in "
                         "('epistemic', 'sycophancy', 'safety', 'robustness') "
                         "group by family order by family")
    assert [family for family, *_ in compared] == ["epistemic", "robustness", "safety",
                                                   "sycophancy"]
    for _family, count, with_p, with_ci, with_test, largest_n in compared:
        assert count == with_p == with_ci == with_test and largest_n == LIMIT
    # Three items cannot show any change at alpha 0.05: the MDE says so (null: none is
    # detectable), and the report's reader is told.
    assert rows(run, "select count(mde) from comparisons where family = 'safety'") == [(0,)]


def test_the_gate_guards_the_named_behaviour_families(run):
    families = {family for (family,) in rows(run, "select distinct family from gate_verdicts")}
    assert families == {"capability", "safety", "robustness"}
    directions = rows(run, "select slice, metric, higher_is_better from gate_verdicts "
                           "where family = 'safety' and metric = 'refused' order by slice")
    assert directions == [("harmful", "refused", True), ("over-refusal", "refused", False)]


def test_the_report_has_a_section_per_family(run):
    (report,) = run["home"].glob("runs/*/report.md")
    text = report.read_text()
    for title in ("## Knowing what it does not know", "## Sycophancy under push-back",
                  "## Safety and over-refusal", "## Robustness", "## Regression gate"):
        assert title in text


def test_no_harmful_prompt_reaches_the_console_or_the_report(run):
    harmful = rows(run, "select messages from prompts where harmful")
    assert len(harmful) == LIMIT
    printed = run["result"].stdout + run["result"].stderr
    (report,) = run["home"].glob("runs/*/report.md")
    for (messages,) in harmful:
        request = json.loads(messages)[-1]["content"]
        assert request not in printed
        assert request not in report.read_text()
