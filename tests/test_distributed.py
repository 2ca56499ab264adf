"""Data-parallel training over two local ranks (mlx.launch, ring backend): the same adapters
and losses as one process with the same global batch, up to float summation order; only rank 0
writes; batch sharding and the global-batch loss checked piece by piece."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral
from mlx.utils import tree_flatten
from mlx_lm.tuner.trainer import default_loss

from lorascope.config import ConfigError, RunConfig, load_config
from lorascope.models.loader import load_model
from lorascope.paths import RunPaths
from lorascope.runs import RunContext, start_run
from lorascope.training.supervisor import TrainingProcessDied, train_supervised
from lorascope.training.trainer import (
    TrainingError,
    attach_adapters,
    global_batch_loss,
    resumable_batches,
    target_loss,
    tokenize_examples,
    train_adapters,
)

# Several global batches of rows of different lengths (the ranks hold different numbers of
# loss tokens), a warmup and a cosine schedule, a validation report; no dropout, whose masks
# each rank draws for its own rows.
TRAIN = {"iters": 8, "batch_size": 4, "learning_rate": 1e-3, "steps_per_report": 2,
         "save_every": 4, "steps_per_eval": 4, "keep_checkpoints": 10}
EVAL = {"prompts": ["test"], "max_tokens": 2, "test_limit": 4, "capability_tasks": [],
        "perplexity_corpora": [], "attention_prompts": 0, "test_loss": False}
# Float32 sums in another order (per-rank partial sums, the ring's all_sum) over 8 Adam steps
# of learning rate 1e-3: adapters agree to well under one step's update.
ADAPTER_TOLERANCE = 1e-5
LOSS_RELATIVE_TOLERANCE = 1e-5


KILL_MARKER = "LORASCOPE_TEST_KILL_MARKER"


def kill_once_at_step_4(step: int) -> None:
    """A fault the training child imports (rank 0 runs after_report): SIGKILL after the
    checkpoint of step 4, once (the file $LORASCOPE_TEST_KILL_MARKER names remembers it)."""
    marker = Path(os.environ[KILL_MARKER])
    if step == 4 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


def started(folder: Path, tiny_mistral_dir: Path, ranks: int) -> RunContext:
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "train": {**TINY_RUN["train"], **TRAIN,
                                                            "ranks": ranks},
                                      "eval": {**TINY_RUN["eval"], **EVAL}}))
    home = home_with_tiny_mistral(folder / "home", tiny_mistral_dir)
    return start_run(load_config(config), home, log=lambda _: None)


def trained(folder: Path, tiny_mistral_dir: Path, ranks: int) -> dict[str, Any]:
    context = started(folder, tiny_mistral_dir, ranks)
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    result = train_supervised(context, on_metrics=rows.extend, log=lines.append)
    return {"context": context, "rows": rows, "lines": lines, "result": result}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> dict:
    return trained(tmp_path_factory.mktemp("one"), tiny_mistral_dir, ranks=1)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory, tiny_mistral_dir: Path) -> dict:
    return trained(tmp_path_factory.mktemp("two"), tiny_mistral_dir, ranks=2)


def adapters(context: RunContext) -> dict[str, mx.array]:
    return mx.load(str(context.paths.adapters / "adapters.safetensors"))


def losses(rows: list[dict[str, Any]], split: str) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in rows if row["split"] == split}


# ---------------------------------------------------------------- end to end


def test_two_ranks_train_the_adapters_of_one_process_with_the_same_global_batch(
    one_process: dict, two_ranks: dict
) -> None:
    one, two = adapters(one_process["context"]), adapters(two_ranks["context"])
    assert one.keys() == two.keys()
    difference = max(mx.abs(one[k] - two[k]).max().item() for k in one)
    change = max(mx.abs(one[k] - start).max().item()
                 for k, start in initial_adapters(one_process["context"]).items())
    print(f"max |adapters(2 ranks) - adapters(1 process)| = {difference:.3g} "
          f"(largest change from the initial adapters: {change:.3g})")
    assert difference < ADAPTER_TOLERANCE
    assert change > 100 * ADAPTER_TOLERANCE  # training moved them: the comparison means something


def test_two_ranks_report_the_losses_of_one_process_once_per_step(
    one_process: dict, two_ranks: dict
) -> None:
    for split in ("train", "valid"):
        one, two = losses(one_process["rows"], split), losses(two_ranks["rows"], split)
        assert one.keys() == two.keys() and one
        for step in one:
            assert math.isclose(one[step], two[step], rel_tol=LOSS_RELATIVE_TOLERANCE), (
                split, step, one[step], two[step])
    steps = [row["step"] for row in two_ranks["rows"] if row["split"] == "train"]
    assert steps == [2, 4, 6, 8]  # rank 0 alone reports
    tokens = {row["step"]: row["trained_tokens"] for row in one_process["rows"]}
    assert tokens == {row["step"]: row["trained_tokens"] for row in two_ranks["rows"]}


def test_the_checkpoints_of_two_ranks_are_those_of_one_process(
    one_process: dict, two_ranks: dict
) -> None:
    def listing(context: RunContext) -> list[str]:
        return sorted(p.relative_to(context.paths.checkpoints).as_posix()
                      for p in context.paths.checkpoints.rglob("*") if p.is_file())

    assert listing(two_ranks["context"]) == listing(one_process["context"])
    assert two_ranks["result"].steps == 8 and two_ranks["result"].resumed_from_step == 0


def test_a_killed_rank_is_a_process_death_and_the_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, tiny_mistral_dir: Path, two_ranks: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv(KILL_MARKER, str(tmp_path / "killed"))
    context = started(tmp_path, tiny_mistral_dir, ranks=2)
    with pytest.raises(TrainingProcessDied, match="SIGKILL"):
        train_supervised(context, on_metrics=lambda _: None, log=lambda _: None,
                         after_report="test_distributed:kill_once_at_step_4")
    result = train_supervised(context, on_metrics=lambda _: None, log=lambda _: None,
                              after_report="test_distributed:kill_once_at_step_4")
    assert result.resumed_from_step == 4
    resumed, uninterrupted = adapters(context), adapters(two_ranks["context"])
    assert all(mx.array_equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def initial_adapters(context: RunContext) -> dict[str, mx.array]:
    model, _ = load_model(context.model_path, context.config.model)
    mx.random.seed(context.config.seed)
    attach_adapters(model, context.config.lora)
    return dict(tree_flatten(model.trainable_parameters()))


# ---------------------------------------------------------------- the pieces


class Rank:
    """The part of an mx.distributed group resumable_batches reads."""

    def __init__(self, rank: int, size: int) -> None:
        self._rank, self._size = rank, size

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size


def examples() -> list[tuple[list[int], int]]:
    # Rows of different lengths and prompt offsets, as tokenize_examples makes them.
    return [(list(range(1, 3 + 5 * i)), i % 3) for i in range(12)]


def test_the_ranks_shards_together_are_the_global_batch_in_the_same_order() -> None:
    data = examples()
    one = resumable_batches(data, 4, 64, loop=True, seed=3, start=5)
    shards = [resumable_batches(data, 4, 64, loop=True, comm_group=Rank(r, 2), seed=3, start=5)
              for r in range(2)]
    for _ in range(6):
        tokens, bounds = next(one)
        (t0, b0, n0), (t1, b1, n1) = next(shards[0]), next(shards[1])
        assert mx.array_equal(t0, tokens[0::2]) and mx.array_equal(t1, tokens[1::2])
        assert mx.array_equal(b0, bounds[0::2]) and mx.array_equal(b1, bounds[1::2])
        assert n0.item() == n1.item() > 0


def test_validation_shards_carry_no_token_count() -> None:
    batches = list(resumable_batches(examples(), 4, 64, comm_group=Rank(1, 2)))
    assert len(batches) == 3 and all(len(batch) == 2 for batch in batches)


@pytest.mark.parametrize("loss, positions", [(global_batch_loss, False), (target_loss, True)])
def test_the_ranks_losses_average_to_the_global_batch_loss(
    tiny_mistral_dir: Path, loss: Any, positions: bool,
) -> None:
    model, tokenizer = load_model(tiny_mistral_dir, RunConfig().model)
    data = tokenize_examples(
        [[{"role": "user", "content": "q" * n}, {"role": "assistant", "content": "a" * 7 * n}]
         for n in (1, 2, 9, 14)], tokenizer, mask_prompt=True)
    tokens, bounds = next(resumable_batches(data, 4, 256, loop=True))
    shards = [next(resumable_batches(data, 4, 256, loop=True, comm_group=Rank(r, 2),
                                     positions=positions)) for r in range(2)]
    expected, targets = default_loss(model, tokens, bounds)
    per_rank = [loss(model, *shard, world_size=2) for shard in shards]
    assert per_rank[0][1].item() != per_rank[1][1].item()  # unequal shares of targets
    assert sum(loss.item() for loss, _ in per_rank) / 2 == pytest.approx(expected.item(), 1e-6)
    assert sum(n.item() for _, n in per_rank) == targets.item()


def test_a_batch_size_the_ranks_do_not_divide_is_refused_naming_both_keys(tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size \(6\).*train\.ranks \(4\)"):
        load_config(tiny_config(train={"batch_size": 6, "ranks": 4}))


def test_training_refuses_ranks_that_are_not_running(
    tmp_path: Path, tiny_mistral_dir: Path, tiny_config
) -> None:
    config = load_config(tiny_config(train={"batch_size": 2, "ranks": 2}))
    model, tokenizer = load_model(tiny_mistral_dir, config.model)
    with pytest.raises(TrainingError, match="train.ranks is 2 but this process is one of 1"):
        train_adapters(model, tokenizer, [], [], config, tiny_mistral_dir, RunPaths(tmp_path),
                       "test", "data-hash", log=lambda _: None)
