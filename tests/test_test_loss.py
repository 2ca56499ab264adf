"""The test loss is `mlx_lm lora --test`'s, per example: its terms pool to mlx-lm's
`default_loss` over mlx-lm's own batches, the run's step lands the number `mlx_lm lora --test`
prints for the same adapters and data (with and without mask_prompt, a row longer than
max_seq_length among them), and the views pool base and tuned before taking differences."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_evaluation_rows
from test_mlx_lm_config import templated_model  # noqa: F401  (a fixture)

from lorascope import warehouse
from lorascope.config import load_config
from lorascope.data.records import Record
from lorascope.evaluation import steps
from lorascope.evaluation.capability import sequence_logprobs
from lorascope.evaluation.heldout_loss import LossExample, example_losses, loss_examples
from lorascope.models.loader import load_model
from lorascope.paths import warehouse_path
from lorascope.runs import adapter_run_config, start_adapter_run
from lorascope.training.trainer import adapter_config, attach_adapters

MAX_SEQ_LENGTH = 48
LONG_ANSWER = " ".join(f"word{i}" for i in range(60))  # well past MAX_SEQ_LENGTH tokens


def completions(start: int, count: int) -> list[dict[str, str]]:
    return [{"prompt": f"What is {i} plus {i + 3}?", "completion": f"{i} plus {i + 3} is "
             f"{2 * i + 3}."} for i in range(start, start + count)]


def held_out_rows() -> list[dict[str, str]]:
    """Eight rows, two full batches of 4 (mlx-lm's CLI leaves out a partial last batch); the
    third is longer than MAX_SEQ_LENGTH."""
    rows = completions(200, 8)
    rows[2] = {"prompt": "Count for me.", "completion": LONG_ANSWER}
    return rows


def records(rows: list[dict[str, str]]) -> list[Record]:
    return [Record("test.jsonl", line, [{"role": "user", "content": r["prompt"]},
                                        {"role": "assistant", "content": r["completion"]}])
            for line, r in enumerate(rows, 1)]


@pytest.fixture(scope="module")
def tiny(templated_model: Path) -> tuple[Any, Any]:  # noqa: F811
    return load_model(templated_model)


# ---------------------------------------------------------------- against default_loss


@pytest.mark.parametrize("mask_prompt", [True, False])
def test_example_terms_pool_to_default_loss_over_mlx_lm_batches(tiny, mask_prompt: bool) -> None:
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss, iterate_batches

    model, tokenizer = tiny
    examples = loss_examples(records(held_out_rows()), tokenizer, mask_prompt)
    assert max(len(e.ids) for e in examples) > MAX_SEQ_LENGTH
    total, tokens = 0.0, 0
    for batch, lengths in iterate_batches([(e.ids, e.loss_offset) for e in examples], 4,
                                          MAX_SEQ_LENGTH):
        loss, ntoks = default_loss(model, batch, lengths)
        total, tokens = total + (loss * ntoks).item(), tokens + ntoks.item()

    rows = example_losses(model, examples, MAX_SEQ_LENGTH, batch_size=3)

    assert sum(r["tokens"] for r in rows) == tokens
    assert sum(r["nll"] for r in rows) == pytest.approx(total, rel=1e-5)
    mx.clear_cache()


def test_answer_terms_are_the_whole_reference_answer_whatever_mask_prompt(tiny) -> None:
    model, tokenizer = tiny
    (long_row,) = loss_examples(records(held_out_rows()[2:3]), tokenizer, mask_prompt=False)
    ids, offset = long_row.ids, long_row.answer_offset
    (logprob,) = sequence_logprobs(model, [(ids[:offset], ids[offset:])])

    (row,) = example_losses(model, [long_row], MAX_SEQ_LENGTH, batch_size=1)

    assert long_row.loss_offset == 0 and len(ids) > MAX_SEQ_LENGTH
    assert row["answer_tokens"] == len(ids) - offset
    assert row["answer_nll"] == pytest.approx(-logprob, rel=1e-5)
    assert row["tokens"] == MAX_SEQ_LENGTH - 1  # cut: no target past the end


def test_a_row_that_fits_counts_one_target_past_its_end(tiny) -> None:
    model, tokenizer = tiny
    (row,) = example_losses(model, loss_examples(records(held_out_rows()[:1]), tokenizer, True),
                            MAX_SEQ_LENGTH, batch_size=1)
    assert row["tokens"] == row["answer_tokens"] + 1


def test_an_example_scores_the_same_alone_and_in_a_batch(tiny) -> None:
    model, tokenizer = tiny
    examples = loss_examples(records(held_out_rows()), tokenizer, True)
    alone = [example_losses(model, [e], MAX_SEQ_LENGTH, 1)[0] for e in examples]
    together = example_losses(model, examples, MAX_SEQ_LENGTH, 8)
    for one, other in zip(alone, together, strict=True):
        assert one["tokens"] == other["tokens"]
        assert one["nll"] == pytest.approx(other["nll"], rel=1e-5)


def test_a_prompt_longer_than_max_seq_length_has_no_test_loss_terms(tiny) -> None:
    model, _ = tiny
    example = LossExample(list(range(1, 80)), 60, 60)
    (row,) = example_losses(model, [example], MAX_SEQ_LENGTH, 1)
    assert (row["tokens"], row["nll"], row["answer_tokens"]) == (0, 0.0, 19)


# ---------------------------------------------------------------- against mlx_lm lora --test


@pytest.fixture(scope="module")
def random_adapters(tmp_path_factory: pytest.TempPathFactory, templated_model: Path,  # noqa: F811
                    ) -> Path:
    """LoRA adapters with random (non-zero) B matrices in mlx-lm's layout: the tuned model
    then differs from the base, without spending time on training."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    folder = tmp_path_factory.mktemp("adapters")
    config_file = folder / "lorascope.yaml"
    config_file.write_text(yaml.safe_dump({"model": {"source": str(templated_model)},
                                           "lora": {"rank": 4, "num_layers": 2}}))
    config = load_config(config_file)
    model, _ = load_model(templated_model)
    mx.random.seed(0)
    attach_adapters(model, config.lora)
    weights = {name: mx.random.normal(value.shape) * 0.5 if name.endswith("lora_b") else value
               for name, value in tree_flatten(model.trainable_parameters())}
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    (folder / "adapter_config.json").write_text(
        json.dumps(adapter_config(config, templated_model)))
    return folder


TEST_LINE = re.compile(r"Test loss (\d+\.\d+), Test ppl (\d+\.\d+)")


def mlx_lm_test(config: Path) -> tuple[float, float]:
    """`python -m mlx_lm lora -c CONFIG` (test only); the test loss and ppl it prints."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "mlx_lm", "lora", "-c", str(config)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (loss, ppl), = TEST_LINE.findall(result.stdout)
    return float(loss), float(ppl)


@pytest.mark.parametrize("mask_prompt", [True, False])
def test_the_test_loss_is_the_one_mlx_lm_lora_test_prints(
    tmp_path: Path, templated_model: Path, random_adapters: Path, mask_prompt: bool,  # noqa: F811
) -> None:
    """One mlx-lm config (test only, the whole test split, batch 4, max_seq_length 48, the
    given mask_prompt) and one adapter folder, through `mlx_lm lora -c` and through lorascope
    (`lorascope eval CONFIG --adapter` starts its run the same way, then the test-loss step
    lands base and tuned): the `test_loss` view's tuned test loss equals what mlx-lm prints at
    its printed precision (3 decimals), and ln of the ppl (printed with 5 more significant
    digits here) within 1e-5, tight enough to catch one target more or less per row (measured:
    leaving out the target past each row's end fails both cases)."""
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", completions(0, 8)), ("valid", completions(100, 4)),
                        ("test", held_out_rows())):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "lora_config.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(templated_model), "data": str(data), "adapter_path": str(random_adapters),
        "test": True, "test_batches": -1, "batch_size": 4, "max_seq_length": MAX_SEQ_LENGTH,
        "mask_prompt": mask_prompt, "num_layers": 2, "lora_parameters": {"rank": 4},
    }))
    theirs_loss, theirs_ppl = mlx_lm_test(config)

    home = tmp_path / "home"
    run_config, adapter = adapter_run_config(load_config(config), random_adapters, home)
    context = start_adapter_run(run_config, adapter, home, log=lambda _: None)
    for variant in ("base", "tuned"):
        assert steps.test_loss_variant(context, variant, log=lambda _: None) == 8
    ((n, base_loss, tuned_loss, tuned_ppl),) = warehouse.query(
        warehouse_path(home), "select n, base_test_loss, tuned_test_loss, tuned_test_ppl "
                              "from test_loss")[1]

    assert n == 8
    assert abs(tuned_loss - theirs_loss) <= 0.0005 + 1e-6
    # The ppl has more significant digits than the loss: ln of it pins mlx-lm's loss closer.
    assert math.log(tuned_ppl) == pytest.approx(math.log(theirs_ppl), abs=1e-5)
    assert abs(tuned_loss - base_loss) > 0.01  # the adapters change the loss being compared


# ---------------------------------------------------------------- the warehouse


def test_rows_from_before_0012_keep_their_answer_loss_as_answer_nll(tmp_path: Path) -> None:
    """Before migration 0012, tokens and nll held the answer's NLL: they move to answer_*; the
    null tokens and nll left behind make the test-loss step score the example again."""
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for version in [v for v in warehouse.MIGRATION_VERSIONS if v < 12]:
            (sql_file,) = (Path(warehouse.__file__).parent / "migrations").glob(
                f"{version:04d}_*.sql")
            con.execute(sql_file.read_text())
            con.execute("insert into schema_version values (?, now())", [version])
        con.execute("insert into test_losses values ('e', 'r', 'base', 'test-00000', 12, 3.5)")
    warehouse.connect(path).close()

    assert warehouse.query(path, "select tokens, nll, answer_tokens, answer_nll "
                                 "from test_losses")[1] == [(None, None, 12, 3.5)]


# ---------------------------------------------------------------- the views


def view_rows(path: Path, view: str) -> list[dict[str, Any]]:
    columns, rows = warehouse.query(path, f"select * from {view}")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_views_report_differences_of_the_pooled_losses(tmp_path: Path) -> None:
    """A 10-token and a 400-token answer: the delta beside pooled losses is their difference,
    not the mean of per-example differences (which the short answer would dominate)."""
    path = tmp_path / "warehouse.duckdb"
    examples = {"e1": (10, 11, 20.0, 10.0), "e2": (400, 401, 400.0, 420.0)}
    write_evaluation_rows(path, "test_losses", [
        {"run_id": "r", "variant": variant, "example_id": example, "tokens": tokens,
         "nll": nll * tokens / answer_tokens, "answer_tokens": answer_tokens, "answer_nll": nll}
        for example, (answer_tokens, tokens, base, tuned) in examples.items()
        for variant, nll in (("base", base), ("tuned", tuned))])
    write_evaluation_rows(path, "perplexity_items", [
        {"run_id": "r", "variant": variant, "corpus": "wiki", "item_id": example,
         "tokens": answer_tokens, "nll": nll}
        for example, (answer_tokens, _, base, tuned) in examples.items()
        for variant, nll in (("base", base), ("tuned", tuned))])

    (loss,) = view_rows(path, "test_loss")
    (perplexity,) = view_rows(path, "perplexity_preservation")

    assert loss["delta_answer_loss"] == pytest.approx((430 - 420) / 410)
    assert loss["delta_test_loss"] == pytest.approx(
        loss["tuned_test_loss"] - loss["base_test_loss"])
    assert loss["base_test_ppl"] == pytest.approx(math.exp(loss["base_test_loss"]))
    assert perplexity["delta_nll_per_token"] == pytest.approx((430 - 420) / 410)
