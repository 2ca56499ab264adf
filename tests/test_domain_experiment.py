"""The domain experiment: goals scoped to prompt sets, the transfer overrides, the matrix, and
the whole experiment on tiny-mistral (lorascope.experiments, flows/experiments.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.config import ConfigError, GoalCheck, load_config
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.evaluation.scoring import score_generation
from lorascope.experiments import load_domain_configs, transfer_matrix, transfer_overrides
from lorascope.paths import warehouse_path

COMMONSENSE = "configs/demo-commonsense.yaml"


def write_config(folder: Path, name: str, source: str, **eval_settings: Any) -> str:
    config = copy.deepcopy(TINY_RUN)
    config["name"] = name
    config["data"]["source"] = source
    config["train"].update(iters=2, save_every=2, steps_per_report=2)
    config["eval"].update(eval_settings)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def prompt(source: str) -> EvalPrompt:
    return EvalPrompt(prompt_id="p", domain="in_domain", category="", reference="bank",
                      messages=[{"role": "user", "content": "Where?\n(A) bank\n(B) mall"}],
                      source=source)


def test_a_goal_check_scoped_to_prompt_sets_scores_only_their_prompts() -> None:
    goal = [GoalCheck(name="choice_format", regex=r"\s*Answer:\s*\([A-E]\)",
                      prompt_sets=["builtin:commonsense-format"]),
            GoalCheck(name="answer_in_output", contains_reference=True)]
    own = score_generation(prompt("builtin:commonsense-format"), "Answer: (A) bank", "stop",
                           goal)
    other = score_generation(prompt("builtin:sciq-format"), "Answer: (A) bank", "stop", goal)
    assert (own.scores["choice_format"], own.scores["answer_in_output"]) == (1.0, 1.0)
    assert "choice_format" not in other.scores and other.scores["answer_in_output"] == 1.0


def test_the_commonsense_goal_passes_its_own_answer_style_only() -> None:
    goal = load_config(COMMONSENSE).eval.goal
    source = "builtin:commonsense-format"
    right = score_generation(prompt(source), "Answer: (A) bank", "stop", goal).scores
    wrong = score_generation(prompt(source), "Answer: (B) mall\nBecause.", "stop", goal).scores
    assert [right[c.name] for c in goal] == [1.0, 1.0, 1.0]
    assert [wrong[c.name] for c in goal] == [1.0, 0.0, 0.0]


def test_transfer_overrides_give_a_run_the_other_domains_prompts_and_goal() -> None:
    demo, commonsense = load_domain_configs(["configs/demo.yaml", COMMONSENSE])
    evaluated = load_config("configs/demo.yaml", transfer_overrides(commonsense))
    assert evaluated.eval.prompts == commonsense.eval.prompts
    assert evaluated.eval.goal == commonsense.eval.goal
    assert evaluated.eval.capability_limit == demo.eval.capability_limit


def test_a_domain_config_evaluated_on_its_own_test_split_is_refused(tmp_path: Path) -> None:
    own_split = write_config(tmp_path, "own", "builtin:sciq-format", prompts=["test"])
    other = write_config(tmp_path, "other", "builtin:commonsense-format")
    with pytest.raises(ConfigError, match=r"own\.yaml: eval\.prompts names 'test'"):
        load_domain_configs([own_split, other])


def test_the_transfer_matrix_has_a_column_per_trained_domain_and_bolds_the_diagonal() -> None:
    def row(trained: str, evaluated: str, delta: float) -> dict[str, Any]:
        return {"trained_domain": trained, "evaluated_domain": evaluated, "slice": "in_domain",
                "metric": "format_ok", "delta": delta, "ci_low": delta - 0.1,
                "ci_high": delta + 0.1}

    columns, rows = transfer_matrix(
        [row("sci", "sci", 0.5), row("cs", "sci", -0.2), row("sci", "cs", 0.0)],
        ("evaluated_domain", "slice", "metric"), ["sci", "cs"])
    assert columns == ["evaluated_domain", "slice", "metric", "tuned on sci", "tuned on cs"]
    assert rows == [
        ["sci", "in_domain", "format_ok", "**+0.500 [+0.400, +0.600]**", "-0.200 [-0.300, -0.100]"],
        ["cs", "in_domain", "format_ok", "+0.000 [-0.100, +0.100]", ""],
    ]


@pytest.mark.slow
def test_a_domain_experiment_lands_every_trained_domain_on_every_evaluated_domain(
    prefect_harness, tiny_mistral_dir, tmp_path: Path
) -> None:
    from lorascope.flows.experiments import domain_experiment

    home = home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    small = {"attention_prompts": 0, "capability_limit": 4, "perplexity_limit": 0,
             "test_loss": False, "max_tokens": 4}
    sciq = write_config(tmp_path, "tiny-sciq", "builtin:sciq-format", **{
        **small, "prompts": ["builtin:sciq-format"],
        "goal": [{"name": "format_ok", "regex": r"\s*Answer:"}]})
    commonsense = write_config(tmp_path, "tiny-commonsense", "builtin:commonsense-format", **{
        **small, "prompts": ["builtin:commonsense-format"],
        "goal": [{"name": "choice_format", "regex": r"\s*Answer:\s*\([A-E]\)",
                  "prompt_sets": ["builtin:commonsense-format"]}]})

    experiment_id = domain_experiment([sciq, commonsense], home=str(home))

    _, cells = warehouse.query(
        warehouse_path(home),
        "select trained_domain, evaluated_domain, metric, count(*) from domain_transfer "
        "where experiment_id = ? and family = 'goal' and slice = 'in_domain' "
        "and metric in ('format_ok', 'choice_format') group by all order by all",
        [experiment_id])
    assert cells == [
        ("tiny-commonsense", "tiny-commonsense", "choice_format", 1),
        ("tiny-commonsense", "tiny-sciq", "format_ok", 1),
        ("tiny-sciq", "tiny-commonsense", "choice_format", 1),
        ("tiny-sciq", "tiny-sciq", "format_ok", 1),
    ]
    _, capability = warehouse.query(
        warehouse_path(home),
        "select distinct trained_domain from domain_transfer where experiment_id = ? "
        "and family = 'capability' and ci_low is not null order by 1", [experiment_id])
    assert capability == [("tiny-commonsense",), ("tiny-sciq",)]
    report = (home / "experiments" / experiment_id / "report.md").read_text()
    assert "## Transfer matrix: each domain's goal" in report
    assert "| tuned on tiny-sciq | tuned on tiny-commonsense |" in report
    assert (home / "experiments" / experiment_id / "report.html").is_file()
