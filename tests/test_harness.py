"""Capability tasks through lm-evaluation-harness itself: the offline lorascope_ tasks score
each item as lorascope.evaluation.capability does, adapters are applied, a Hub task offline
fails with one clear message, and results land once in the warehouse with base-vs-tuned
deltas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lorascope import warehouse
from lorascope.config import ConfigError, RunConfig, parse_config
from lorascope.evaluation.capability import (
    continuation_ids,
    load_task,
    score_items,
    sequence_logprobs,
)
from lorascope.evaluation.harness import (
    HarnessTaskError,
    LoadedMLXLM,
    result_rows,
    run_tasks,
    sample_rows,
    task_manager,
)
from lorascope.evaluation.steps import harness_variant
from lorascope.runs import RunContext


@pytest.fixture(scope="module")
def tiny(tiny_mistral_dir):
    from lorascope.models.loader import load_model

    return load_model(tiny_mistral_dir)


@pytest.fixture(scope="module")
def offline_tasks():
    return task_manager(["lorascope_arc_easy"])


# The first items, and four where the random tiny-mistral's acc_norm depends on dividing by
# the choice's length without the space before it (lm-eval's way) rather than with it.
ARC_DOCS = [*range(6), 109, 223, 375, 497]


def test_lm_eval_scores_each_arc_easy_item_as_the_capability_module_does(tiny, offline_tasks):
    import lm_eval

    model, tokenizer = tiny
    results = lm_eval.simple_evaluate(
        model=LoadedMLXLM(model, tokenizer), tasks=["lorascope_arc_easy"],
        samples={"lorascope_arc_easy": ARC_DOCS}, task_manager=offline_tasks,
    )
    samples = {s["doc_id"]: s for s in sample_rows(results)}
    items = load_task("arc_easy", max(ARC_DOCS) + 1)
    items = [items[i] for i in ARC_DOCS]
    ours = score_items(model, tokenizer, items)
    assert [(bool(samples[i]["acc"]), bool(samples[i]["acc_norm"])) for i in ARC_DOCS] == [
        (row["correct"], row["correct_norm"]) for row in ours]
    normalization_decides = 0
    for doc_id, item in zip(ARC_DOCS, items, strict=True):
        lm_eval_lls = [ll for ll, _ in samples[doc_id]["responses"]]
        our_lls = sequence_logprobs(
            model, [continuation_ids(tokenizer, item.context, c) for c in item.choices])
        assert lm_eval_lls == pytest.approx(our_lls, abs=1e-3)
        with_space = np.array([len(c) for c in item.choices])
        normalization_decides += np.argmax(our_lls / with_space) != np.argmax(
            our_lls / (with_space - 1))
    assert normalization_decides  # else these items no longer test acc_norm's length
    (acc,) = [r for r in result_rows(results) if r["metric"] == "acc"]
    assert acc["n"] == len(ARC_DOCS)
    assert acc["value"] == pytest.approx(np.mean([r["correct"] for r in ours]))


def test_a_hub_task_offline_fails_naming_the_task_and_its_offline_variant(
    tiny, monkeypatch
):
    import datasets
    import huggingface_hub
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    from lorascope.evaluation.harness_tasks import FOLDER

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    # lm-eval's own arc task configs only: indexing all of lm-eval's tasks takes ~15 s.
    arc = Path(lm_eval.tasks.__file__).parent / "arc"
    manager = TaskManager(include_path=[str(arc), str(FOLDER)], include_defaults=False)
    with pytest.raises(HarnessTaskError) as raised:
        run_tasks(*tiny, ["arc_easy"], limit=2, manager=manager)
    message = str(raised.value)
    assert "arc_easy (dataset allenai/ai2_arc)" in message
    assert "Hugging Face Hub" in message
    assert "offline variant lorascope_arc_easy" in message


def test_an_unknown_task_is_refused_before_any_model_work(tiny, offline_tasks):
    with pytest.raises(HarnessTaskError, match="no task arc_eazy.*lorascope_arc_easy"):
        run_tasks(*tiny, ["arc_eazy"], manager=offline_tasks)


def test_tasks_from_the_include_path_run_next_to_the_offline_ones(tiny, tmp_path):
    from lorascope.evaluation.harness_tasks import FOLDER

    (tmp_path / "my_arc.yaml").write_text(
        f"include: {FOLDER / 'lorascope_arc_easy.yaml'}\ntask: my_arc\n")
    result = run_tasks(*tiny, ["my_arc"], limit=2, include_path=str(tmp_path))
    assert {(r["task"], r["metric"], r["n"]) for r in result.rows} == {
        ("my_arc", "acc", 2), ("my_arc", "acc_norm", 2)}


def test_config_checks_offline_task_names_and_the_include_path_at_load():
    config = parse_config({"eval": {"harness_tasks": ["lorascope_piqa", "arc_easy"],
                                    "harness_limit": 10}})
    assert config.eval.harness_tasks == ["lorascope_piqa", "arc_easy"]
    with pytest.raises(ConfigError, match="no offline task.*lorascope_arc_eazy"):
        parse_config({"eval": {"harness_tasks": ["lorascope_arc_eazy"]}})
    with pytest.raises(ConfigError, match="harness_include_path: /no/such is not a folder"):
        parse_config({"eval": {"harness_include_path": "/no/such"}})


def write_random_adapter(model_dir: Path, folder: Path) -> None:
    """A LoRA adapter in mlx-lm's layout whose update is not zero (a fresh one's is)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load

    from lorascope.training.trainer import adapter_config, attach_adapters

    config = RunConfig.model_validate({"lora": {"rank": 4, "alpha": 8}})
    model, _ = load(str(model_dir))
    mx.random.seed(0)  # lora_a is drawn from the global generator
    attach_adapters(model, config.lora)
    for index, (_, module) in enumerate(model.named_modules()):
        if hasattr(module, "lora_b"):
            module.lora_b = 0.05 * mx.random.normal(module.lora_b.shape, key=mx.random.key(index))
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / "adapters.safetensors"),
                        dict(tree_flatten(model.trainable_parameters())))
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config(config, model_dir)))


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, tiny_mistral_dir):
    """A run whose adapters/ holds a random adapter, with lorascope_arc_easy run by lm-eval
    on base and tuned through the pipeline's own step."""
    home = tmp_path_factory.mktemp("harness_home")
    config = parse_config({"eval": {"harness_tasks": ["lorascope_arc_easy"],
                                    "harness_limit": 6}})
    context = RunContext(
        run_id="harness-run", config=config, home=home, model_path=tiny_mistral_dir,
        data_hash="", code_version="",
    )
    warehouse.connect(context.warehouse).close()  # as start_run leaves it
    write_random_adapter(tiny_mistral_dir, context.paths.adapters)
    counts = [harness_variant(context, variant) for variant in ("base", "tuned")]
    return context, counts


def test_the_tuned_variant_is_scored_with_its_adapter_applied(evaluated_run):
    context, _ = evaluated_run

    def log_likelihoods(variant: str) -> list[list[float]]:
        lines = (context.paths.evaluation(context.evaluation_id) / "lm_eval" / variant
                 / "lorascope_arc_easy.jsonl").read_text()
        return [[ll for ll, _ in json.loads(line)["responses"]] for line in lines.splitlines()]

    base, tuned = log_likelihoods("base"), log_likelihoods("tuned")
    assert len(base) == len(tuned) == 6
    # Every question's choice log-likelihoods move: without the adapter they would be equal.
    assert all(max(abs(b - t) for b, t in zip(bs, ts, strict=True)) > 1e-3
               for bs, ts in zip(base, tuned, strict=True))


def test_results_land_in_the_warehouse_once_and_a_rerun_adds_no_rows(evaluated_run):
    context, counts = evaluated_run
    sql = "select variant, task, metric, n, lm_eval_version from harness_results order by all"
    _, before = warehouse.query(context.warehouse, sql)
    assert counts == [2, 2]
    assert before == [(v, "lorascope_arc_easy", m, 6, "0.4.13")
                      for v in ("base", "tuned") for m in ("acc", "acc_norm")]
    assert harness_variant(context, "tuned") == 0  # already stored: not run again
    _, rows = warehouse.query(context.warehouse, "select * from harness_results")
    columns, _ = warehouse.query(context.warehouse, "select * from harness_results limit 0")
    warehouse.write_rows(context.warehouse, "harness_results",
                         [dict(zip(columns, row, strict=True)) for row in rows])
    assert warehouse.query(context.warehouse, sql)[1] == before


def test_harness_deltas_gives_tuned_minus_base_with_a_ci_from_both_stderrs(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    key = {"evaluation_id": "e", "run_id": "r", "task": "t", "metric": "acc", "n": 100,
           "lm_eval_version": "0.4.13"}
    warehouse.write_rows(path, "harness_results", [
        {**key, "variant": "base", "value": 0.50, "stderr": 0.03},
        {**key, "variant": "tuned", "value": 0.42, "stderr": 0.04},
        {**key, "metric": "f1", "variant": "base", "value": 0.5, "stderr": None},
        {**key, "metric": "f1", "variant": "tuned", "value": 0.6, "stderr": None},
    ])
    columns, rows = warehouse.query(path, "select * from harness_deltas order by metric")
    acc, f1 = (dict(zip(columns, row, strict=True)) for row in rows)
    assert acc["delta"] == pytest.approx(-0.08)
    assert acc["delta_ci_low"] == pytest.approx(-0.08 - 1.96 * 0.05)
    assert acc["delta_ci_high"] == pytest.approx(-0.08 + 1.96 * 0.05)
    assert (f1["delta"], f1["delta_ci_low"]) == (pytest.approx(0.1), None)
