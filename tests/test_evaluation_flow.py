"""Evaluation measures the user's own tuning: a completions-format dataset with no declared
goal is evaluated on its own held-out test split (generations, reference scores, test loss,
nothing demo-specific); changing only eval settings re-evaluates without training, as a new
evaluation of the same run; a pairwise judge on a real mlx_lm.server lands its verdicts; one
process writes a run at a time. Real `lorascope` processes against the session's Prefect test
server, a real DuckDB warehouse, tiny-mistral."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import home_with_tiny_mistral

from lorascope import warehouse
from lorascope.paths import RunPaths, warehouse_path

pytestmark = pytest.mark.slow

DEMO_METRICS = ("format_ok", "starts_with_answer", "answer_in_output", "answer_correct")


@pytest.fixture(scope="module")
def api_url(prefect_api_url: str) -> str:
    return prefect_api_url


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> Path:
    return home_with_tiny_mistral(tmp_path_factory.mktemp("evaluation_home"), tiny_mistral_dir)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own data in mlx-lm's completions format, and a config that declares no goal."""
    folder = tmp_path_factory.mktemp("user")
    data = folder / "sums.jsonl"
    data.write_text("".join(
        json.dumps({"prompt": f"What is {a} plus {b}?", "completion": f"{a} plus {b} is {a + b}."})
        + "\n" for a in range(8) for b in range(5)))
    path = folder / "sums.yaml"
    path.write_text(yaml.safe_dump({
        "name": "sums", "seed": 0,
        "model": {"source": "tiny-mistral"},
        "data": {"source": str(data), "valid_fraction": 0.15, "test_fraction": 0.25,
                 "max_seq_length": 128, "near_duplicate_threshold": None},
        "lora": {"rank": 4, "alpha": 8},
        "train": {"iters": 4, "batch_size": 2, "steps_per_report": 2, "save_every": 2,
                  "steps_per_eval": 4, "val_batches": 1},
        "eval": {"max_tokens": 4, "batch_size": 8, "test_limit": 6, "capability_limit": 4,
                 "perplexity_limit": 0, "attention_prompts": 0},
    }))
    return path


def lorascope(home: Path, api_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LORASCOPE_HOME": str(home), "PREFECT_API_URL": api_url}
    return subprocess.run([sys.executable, "-m", "lorascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=900)


def rows(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    return warehouse.query(warehouse_path(home), sql, params)[1]


@pytest.fixture(scope="module")
def first_run(home: Path, api_url: str, config: Path) -> dict:
    result = lorascope(home, api_url, "run", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    ((run_id, evaluation_id),) = rows(home, "select run_id, evaluation_id from evaluations")
    return {"run_id": run_id, "evaluation_id": evaluation_id, "result": result}


def test_without_a_declared_goal_the_test_split_is_generated_scored_and_its_loss_measured(
    home: Path, first_run: dict
) -> None:
    evaluation = [first_run["evaluation_id"]]
    prompts = rows(home, "select prompt_id, source, reference from prompts "
                         "where evaluation_id = ? order by prompt_id", evaluation)
    assert len(prompts) == 6  # the 10-example test split, sampled to eval.test_limit
    assert {source for _, source, _ in prompts} == {"test"}
    assert all(reference.endswith(".") and " plus " in reference for *_, reference in prompts)
    generated = rows(home, "select variant, count(*) from generations where evaluation_id = ? "
                           "group by variant order by variant", evaluation)
    assert generated == [("base", 6), ("tuned", 6)]
    metrics = {metric for (metric,) in rows(
        home, "select distinct metric from scores where evaluation_id = ?", evaluation)}
    assert {"exact_match", "token_f1", "rouge_l", "words"} == metrics
    losses = rows(home, "select variant, count(*), min(tokens), min(nll) from test_losses "
                        "where evaluation_id = ? group by variant order by variant", evaluation)
    assert [(v, n) for v, n, *_ in losses] == [("base", 6), ("tuned", 6)]
    assert all(tokens > 0 and nll > 0 for *_, tokens, nll in losses)
    ((n, base_loss, tuned_loss, p_value),) = rows(
        home, "select n, base_test_loss, tuned_test_loss, test_loss_p_value from test_loss "
              "where evaluation_id = ?", evaluation)
    assert n == 6 and base_loss > 0 and tuned_loss > 0 and 0 < p_value <= 1


def test_nothing_demo_specific_is_scored_or_flagged(home: Path, first_run: dict) -> None:
    assert rows(home, "select count(*) from scores where metric in "
                      f"{DEMO_METRICS}")[0][0] == 0
    assert rows(home, "select count(*) from generation_failures "
                      "where mode = 'format_violation'")[0][0] == 0


def test_the_report_names_its_evaluation_and_how_prompts_were_drawn(
    home: Path, first_run: dict
) -> None:
    paths = RunPaths.of(first_run["run_id"], home)
    report = (paths.evaluation(first_run["evaluation_id"]) / "report.md").read_text()
    assert first_run["evaluation_id"] in report.splitlines()[0]
    assert "test 6 (of 10 test examples, sampled with seed 0)" in report
    assert "## Loss on the held-out test split" in report
    assert paths.report.read_text() == report  # the run's latest


@pytest.fixture(scope="module")
def second_run(home: Path, api_url: str, config: Path, first_run: dict,
               judge_url: str) -> dict:
    """The same config with other eval settings: a longer answer budget and a judge."""
    result = lorascope(home, api_url, "run", str(config), "--set", "eval.max_tokens=6",
                       "--set", f"eval.judge={{url: '{judge_url}', model: default_model, "
                       "max_tokens: 8}")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"result": result}


def test_changing_only_eval_settings_trains_nothing_and_adds_an_evaluation(
    home: Path, first_run: dict, second_run: dict
) -> None:
    run_id = first_run["run_id"]
    log = second_run["result"].stdout + second_run["result"].stderr
    assert "training already complete (step 4 of 4): nothing trained" in log
    assert rows(home, "select count(*) from runs") == [(1,)]
    steps = rows(home, "select step from train_metrics where run_id = ? and split = 'train' "
                       "order by step", [run_id])
    assert steps == [(2,), (4,)]  # written once, by the first run
    evaluations = rows(home, "select evaluation_id, adapter_hash, eval_config ->> 'max_tokens' "
                             "from evaluations where run_id = ? order by started_at", [run_id])
    assert len(evaluations) == 2 and evaluations[0][0] == first_run["evaluation_id"]
    assert evaluations[0][1] == evaluations[1][1]  # the same adapters, evaluated twice
    assert [max_tokens for *_, max_tokens in evaluations] == ["4", "6"]
    per_evaluation = rows(home, "select evaluation_id, count(*) from generations "
                                "group by evaluation_id order by min(created_at)")
    assert per_evaluation == [(e, 12) for e, *_ in evaluations]


def test_the_judge_verdicts_and_win_rate_land_in_the_warehouse_and_the_report(
    home: Path, first_run: dict, second_run: dict
) -> None:
    ((evaluation_id,),) = rows(home, "select evaluation_id from evaluations where "
                                     "json_extract_string(eval_config, '$.judge.model') "
                                     "= 'default_model'")
    orders = rows(home, "select judge_order, count(*) from judgments where evaluation_id = ? "
                        "group by judge_order order by judge_order", [evaluation_id])
    assert orders == [("base_first", 6), ("tuned_first", 6)]
    # A tiny random model's replies hold no verdict: they count as unparsed, not as prompts.
    ((judged, judge_model),) = rows(
        home, "select prompts + unparsed, judge_model from judge_win_rate "
              "where evaluation_id = ?", [evaluation_id])
    assert (judged, judge_model) == (6, "default_model")
    report = (RunPaths.of(first_run["run_id"], home).evaluation(evaluation_id)
              / "report.md").read_text()
    section = report.split("## Pairwise judge: tuned vs base")[1].split("\n## ")[0]
    assert "| default_model |" in section


def test_lorascope_eval_re_evaluates_a_run_by_id_and_refuses_training_changes(
    home: Path, api_url: str, first_run: dict, second_run: dict
) -> None:
    run_id = first_run["run_id"]
    refused = lorascope(home, api_url, "eval", run_id, "--set", "train.iters=8")
    assert refused.returncode == 2
    assert "only eval.* settings may change, not train" in refused.stderr
    result = lorascope(home, api_url, "eval", run_id, "--set", "eval.max_tokens=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert rows(home, "select count(*) from evaluations where run_id = ?", [run_id]) == [(3,)]
    assert rows(home, "select count(*) from runs") == [(1,)]


def test_a_new_goal_reuses_every_answer_and_item_and_scores_only_itself(
    home: Path, api_url: str, first_run: dict
) -> None:
    run_id, first = first_run["run_id"], first_run["evaluation_id"]
    # The first evaluation's settings (the run's config now holds the last run's), plus a goal.
    result = lorascope(home, api_url, "eval", run_id, "--set", "eval.max_tokens=4", "--set",
                       "eval.goal=[{name: has_digit, regex: '[0-9]', match: search}]")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "generations landed" not in log
    for variant in ("base", "tuned"):
        assert f"reused 6 generations rows (variant={variant})" in log
        assert f"reused 6 test_losses rows (variant={variant})" in log
        assert f"reused 4 capability_items rows (variant={variant} task=arc_easy)" in log
    ((evaluation_id,),) = rows(home, "select evaluation_id from evaluations where "
                                     "eval_config -> 'goal' ->> '$[0].name' = 'has_digit'")
    same = rows(home, "select count(*) from generations as a join generations as b using "
                      "(variant, prompt_id, output_text) where a.evaluation_id = ? and "
                      "b.evaluation_id = ?", [first, evaluation_id])
    assert same == [(12,)]
    assert rows(home, "select count(*) from scores where evaluation_id = ? and metric = "
                      "'has_digit'", [evaluation_id]) == [(12,)]


def test_the_same_judge_of_the_same_answers_is_not_asked_again(
    home: Path, api_url: str, first_run: dict, second_run: dict, judge_url: str
) -> None:
    # second_run's generation and judge settings, with a goal added: a new evaluation.
    result = lorascope(home, api_url, "eval", first_run["run_id"], "--set", "eval.max_tokens=6",
                       "--set", f"eval.judge={{url: '{judge_url}', model: default_model, "
                       "max_tokens: 8}", "--set", "eval.goal=[{name: any, regex: '.'}]")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "reused 12 judgments rows (judge_model=default_model)" in log
    assert "reused 6 generations rows (variant=tuned)" in log


def test_a_second_writer_of_a_locked_run_exits_at_once_naming_the_holder(
    home: Path, api_url: str, config: Path, first_run: dict
) -> None:
    from lorascope.run_lock import run_lock

    folder = RunPaths.of(first_run["run_id"], home).root
    with run_lock(folder, "a test holding the run"):
        started = time.monotonic()
        result = lorascope(home, api_url, "run", str(config))
        waited = time.monotonic() - started
    assert result.returncode == 8
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("lorascope: ")]
    assert f"run {first_run['run_id']} is being written by pid {os.getpid()}" in line
    assert "a test holding the run" in line and "temporary server" not in result.stderr
    assert waited < 60  # it did not train or wait for the holder


def test_a_killed_holder_leaves_the_run_unlocked(home: Path, first_run: dict) -> None:
    from lorascope.run_lock import run_lock

    folder = RunPaths.of(first_run["run_id"], home).root
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from lorascope.run_lock import run_lock\n"
         "with run_lock(Path(sys.argv[1]), 'holder'):\n"
         "    print('held', flush=True); time.sleep(600)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with run_lock(folder, "after the crash"):  # the kernel released the dead holder's lock
        assert json.loads((folder / ".lock").read_text())["command"] == "after the crash"


def test_another_run_on_the_same_base_reuses_the_base_models_rows_and_trains_its_own(
    home: Path, api_url: str, config: Path, first_run: dict
) -> None:
    # a sweep member: other adapters (rank 2), the same model, data, seed and eval settings
    result = lorascope(home, api_url, "run", str(config), "--set", "lora.rank=2")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    # from one of the first run's evaluations (the tests above added some with other settings)
    source = f"from run {first_run['run_id']}'s evaluation {first_run['run_id']}-eval-"
    for table in ("generations", "test_losses"):
        assert f"reused 6 {table} rows (variant=base) {source}" in log
    assert f"reused 4 capability_items rows (variant=base task=arc_easy) {source}" in log
    assert "tuned: 6 generations landed" in log and "base: 6 generations landed" not in log
    ((run_id, evaluation_id),) = rows(home, "select run_id, evaluation_id from evaluations "
                                            "where run_id <> ?", [first_run["run_id"]])
    same = rows(home, "select count(*) from generations as a join generations as b using "
                      "(variant, prompt_id, output_text) where a.evaluation_id = ? and "
                      "b.evaluation_id = ? and variant = 'base' and b.run_id = ?",
                [first_run["evaluation_id"], evaluation_id, run_id])
    assert same == [(6,)]


@pytest.mark.parametrize("change", [{"seed": 1}, {"model": {"quantize_bits": 4}},
                                    {"train": {"mask_prompt": False}}])
def test_runs_with_another_seed_model_or_loss_masking_share_no_base_rows(
    home: Path, first_run: dict, change: dict
) -> None:
    from lorascope.config import parse_config
    from lorascope.evaluation.reuse import runs_with_the_same_base
    from lorascope.runs import open_run

    context = open_run(first_run["run_id"], home)
    assert first_run["run_id"] not in runs_with_the_same_base(context)  # never itself
    config = context.config.model_dump(mode="json")
    for section, values in change.items():
        config[section] = {**config[section], **values} if isinstance(values, dict) else values
    other = replace(context, run_id="another-run", config=parse_config(config))
    assert runs_with_the_same_base(replace(context, run_id="another-run")) >= {
        first_run["run_id"]}
    assert first_run["run_id"] not in runs_with_the_same_base(other)
