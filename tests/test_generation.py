"""Batched generation on tiny-mistral (real MLX, real mlx-lm BatchGenerator) and eval prompts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import home_with_tiny_mistral

from lorascope.config import EvalConfig
from lorascope.data.records import Record
from lorascope.evaluation.generation import generate_answers, generate_batch
from lorascope.evaluation.prompt_sets import load_prompt_sets
from lorascope.evaluation.prompts import EvalPrompt, sample
from lorascope.models.chat import prompt_tokens

QUESTIONS = ["What is the boiling point of water?", "Name a planet.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def tiny(tiny_mistral_dir):
    from lorascope.models.loader import load_model

    return load_model(tiny_mistral_dir)


def greedy():
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=0.0)


def token_lists(tokenizer, questions=QUESTIONS):
    return [prompt_tokens(tokenizer, [{"role": "user", "content": q}]) for q in questions]


# Prompts of 4 to 40 words: their chat-templated token lists differ in length, so the batch is
# left-padded and its prefill groups are padded to different lengths.
VARIED = ["Hi.", *QUESTIONS, "List the planets of the solar system in order from the sun, and "
          "for each one give its number of moons, its length of day and one fact that makes it "
          "different from its neighbours."]


def batch_generate_ids(model, tokenizer, prompts, max_tokens):
    """mlx-lm's own batched greedy generation: token ids per prompt, up to (without) EOS."""
    from mlx_lm.generate import batch_generate

    return batch_generate(model, tokenizer, prompts, max_tokens=max_tokens,
                          return_token_ids=True).token_ids


@pytest.mark.parametrize("prefill_group", [16, 2])
def test_generate_batch_gives_the_greedy_token_ids_of_mlx_lm_batch_generate(
    tiny, monkeypatch, prefill_group
):
    from lorascope.evaluation import generation

    monkeypatch.setattr(generation, "PREFILL_GROUP", prefill_group)
    model, tokenizer = tiny
    prompts = token_lists(tokenizer, VARIED)
    assert len({len(p) for p in prompts}) == len(prompts)
    answers, _ = generate_batch(model, tokenizer, prompts, 16, greedy())
    assert [a.token_ids for a in answers] == batch_generate_ids(model, tokenizer, prompts, 16)
    assert [a.text for a in answers] == [tokenizer.decode(a.token_ids) for a in answers]


def test_generate_answers_in_chunks_gives_the_greedy_answers_of_mlx_lm_batch_generate(tiny):
    model, tokenizer = tiny
    prompts = [EvalPrompt(f"q{i}", "in_domain", "", [{"role": "user", "content": q}])
               for i, q in enumerate(VARIED)]
    landed: list[dict] = []
    generate_answers(model, tokenizer, prompts, EvalConfig(max_tokens=16, batch_size=2), seed=0,
                     on_rows=landed.extend)
    theirs = batch_generate_ids(model, tokenizer, token_lists(tokenizer, VARIED), 16)
    ours = {r["prompt_id"]: (r["output_text"], r["output_tokens"]) for r in landed}
    assert [ours[p.prompt_id] for p in prompts] == [
        (tokenizer.decode(ids), len(ids)) for ids in theirs]


def test_a_prompt_that_hits_max_tokens_finishes_with_length(tiny):
    model, tokenizer = tiny
    (answer,), _ = generate_batch(model, tokenizer, token_lists(tokenizer)[:1], 5, greedy())
    assert (len(answer.token_ids), answer.finish_reason) == (5, "length")


def test_generate_batch_reports_prompt_and_generation_throughput_as_mlx_lm_counts_them(tiny):
    model, tokenizer = tiny
    prompts = token_lists(tokenizer)
    tic = time.perf_counter()
    answers, stats = generate_batch(model, tokenizer, prompts, 6, greedy())
    elapsed = time.perf_counter() - tic
    assert all(a.finish_reason == "length" for a in answers)
    # mlx-lm prefills all but each prompt's last token, which the first decode step consumes
    assert stats.prompt_tokens == sum(len(p) - 1 for p in prompts)
    assert stats.generation_tokens == sum(len(a.token_ids) for a in answers) == 18
    assert 0 < stats.prompt_time < stats.wall_time <= elapsed
    assert stats.prompt_tps > 0 and stats.generation_tps > 0 and stats.peak_memory > 0


# 0.25: the finished prompt (1 of 3 rows) leaves the batch at once; 2.0: it never does
@pytest.mark.parametrize("remove_share", [0.25, 2.0])
def test_a_prompt_that_emits_eos_stops_early_without_the_eos_and_with_its_own_latency(
    tiny, tiny_mistral_dir, monkeypatch, remove_share
):
    from lorascope.evaluation import generation
    from lorascope.models.loader import load_model

    monkeypatch.setattr(generation, "REMOVE_FINISHED_SHARE", remove_share)
    model, tokenizer = tiny
    prompts = token_lists(tokenizer)
    first = batch_generate_ids(model, tokenizer, prompts, 1)
    # A fresh tokenizer whose EOS set includes the first prompt's greedy first token.
    _, eos_tokenizer = load_model(tiny_mistral_dir)
    eos_tokenizer.eos_token_ids.add(first[0][0])
    tic = time.perf_counter()
    answers, stats = generate_batch(model, eos_tokenizer, prompts, 12, greedy())
    elapsed = time.perf_counter() - tic
    assert (answers[0].token_ids, answers[0].text, answers[0].finish_reason) == ([], "", "stop")
    assert all(0 < a.latency_seconds <= elapsed for a in answers)
    # (another prompt whose greedy first token is the same stops with it)
    stopped = [a.latency_seconds for a in answers if a.finish_reason == "stop"]
    assert max(stopped) < min(a.latency_seconds for a in answers if a.finish_reason == "length")
    # Keeping the finished prompt in the batch or removing it changes no other answer:
    # mlx-lm's batch_generate, which drops it at once, gives the same tokens.
    assert [a.token_ids for a in answers] == batch_generate_ids(model, eos_tokenizer, prompts, 12)
    # Generated tokens count the EOS of a stopped prompt, not what was decoded after it.
    assert stats.generation_tokens == sum(
        len(a.token_ids) + (a.finish_reason == "stop") for a in answers)
    assert stats.generation_tokens < 3 * 12


def test_generate_answers_lands_chunks_and_skips_prompts_already_generated(tiny):
    model, tokenizer = tiny
    prompts = [
        EvalPrompt(f"q{i}", "in_domain", "", [{"role": "user", "content": q}])
        for i, q in enumerate(QUESTIONS)
    ]
    settings = EvalConfig(max_tokens=4, batch_size=2)
    landed: list[list[dict]] = []
    count = generate_answers(model, tokenizer, prompts, settings, seed=0, on_rows=landed.append,
                             skip_ids={"q1"})
    assert count == 2
    # One chunk, shortest prompt first: batches are formed from length-sorted prompts.
    lengths = dict(zip(["q0", "q2"], map(len, token_lists(tokenizer, QUESTIONS[::2])), strict=True))
    assert lengths["q0"] != lengths["q2"]
    shortest_first = sorted(lengths, key=lengths.get)
    assert [[r["prompt_id"] for r in batch] for batch in landed] == [shortest_first]
    row = next(r for r in landed[0] if r["prompt_id"] == "q0")
    assert row["batch_size"] == 2 and row["batch_tokens_per_second"] > 0
    assert row["batch_prompt_tokens_per_second"] > 0
    assert row["batch_generation_tokens_per_second"] > 0 and row["batch_peak_memory_gb"] > 0
    assert row["prompt_tokens"] == len(token_lists(tokenizer, QUESTIONS[:1])[0])
    assert row["finish_reason"] == "length" and row["output_tokens"] == 4


def prompt_sets(*sources: str, test: list | None = None, files: dict | None = None) -> list:
    return load_prompt_sets(sources, lambda: test or [], lambda source: files[source])


def test_prompt_sets_add_the_builtin_ifeval_prompts_to_a_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "Hi"}],
                                "reference": "Hello"}) + "\n\n")
    assert [p.prompt_id for p in prompt_sets("mine", files={"mine": path})] == ["a"]
    prompts = prompt_sets("mine", "ifeval", files={"mine": path})
    assert len(prompts) == 31
    assert all(p.instructions and p.domain == "out_of_domain" for p in prompts[1:])
    assert [p.source for p in prompts[:2]] == ["mine", "ifeval"]


def test_a_prompt_file_names_the_line_of_an_unknown_instruction(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": []}) + "\n" + json.dumps(
        {"id": "b", "messages": [], "instructions": [{"id": "no:such", "kwargs": {}}]}) + "\n")
    with pytest.raises(ValueError, match=r"prompts.jsonl:2: unknown IFEval instruction"):
        prompt_sets("mine", files={"mine": path})


def test_prompt_sets_refuse_a_prompt_id_used_twice(tmp_path):
    path = tmp_path / "prompts.jsonl"
    row = json.dumps({"id": "a", "messages": []})
    path.write_text(f"{row}\n{row}\n")
    with pytest.raises(ValueError, match="prompt id 'a' is used twice"):
        prompt_sets("mine", files={"mine": path})


def test_the_test_split_gives_one_prompt_per_answered_example_with_its_answer_as_reference():
    chat = Record("t.jsonl", 1, [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "2+2?"},
                                 {"role": "assistant", "content": "4"}], label="math")
    unanswered = Record("t.jsonl", 2, [{"role": "user", "content": "Hello?"}])
    (prompt,) = prompt_sets("test", test=[chat, unanswered])
    assert prompt.prompt_id == "test-00000" and prompt.source == "test"
    assert prompt.messages == chat.messages[:2] and prompt.reference == "4"
    assert (prompt.domain, prompt.category) == ("in_domain", "math")


def test_a_large_test_split_is_sampled_with_the_seed_in_its_order():
    items = list(range(1000))
    drawn = sample(items, 50, seed=3)
    assert len(drawn) == 50 and drawn == sorted(drawn)
    assert drawn == sample(items, 50, seed=3) and drawn != sample(items, 50, seed=4)
    assert sample(items[:10], 50, seed=3) == items[:10]
    assert sample(items, None, seed=3) == items


@pytest.mark.slow
def test_lorascope_eval_compares_base_with_an_adapter_trained_by_mlx_lm_lora(
    tmp_path, tiny_mistral_dir
):
    import os
    import subprocess
    import sys

    import yaml

    from lorascope import warehouse
    from lorascope.paths import warehouse_path

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"{split}.jsonl").write_text(
            json.dumps({"text": "Question: What is 2+2?\nAnswer: 4"}) + "\n")
    adapters = tmp_path / "adapters"
    env = {**os.environ, "LORASCOPE_HOME": str(tmp_path / "home")}
    subprocess.run(
        [sys.executable, "-m", "mlx_lm", "lora", "--model", str(tiny_mistral_dir), "--train",
         "--data", str(data), "--iters", "2", "--batch-size", "1", "--num-layers", "2",
         "--val-batches", "1", "--adapter-path", str(adapters)],
        check=True, capture_output=True, env=env, timeout=600,
    )
    home_with_tiny_mistral(tmp_path / "home", tiny_mistral_dir)
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ext", "model": {"source": "tiny-mistral"},
        "data": {"max_seq_length": 256},
        "eval": {"prompts": ["test", "ifeval"], "test_limit": 20, "max_tokens": 4,
                 "capability_tasks": ["boolq"], "capability_limit": 4,
                 "perplexity_limit": 2},
    }))

    result = subprocess.run(
        [sys.executable, "-m", "lorascope.cli", "eval", str(config), "--adapter", str(adapters)],
        capture_output=True, text=True, env=env, timeout=900,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    path = warehouse_path(tmp_path / "home")
    ((run_id, status, adapter_path),) = warehouse.query(
        path, "select run_id, status, adapter_path from runs")[1]
    assert run_id.startswith("ext-adapter-") and status == "completed"
    assert Path(adapter_path).resolve() == adapters.resolve()
    counts = dict(warehouse.query(
        path, "select variant, count(*) from generations group by variant")[1])
    assert counts["base"] == counts["tuned"] == 20 + 30  # sampled test split, IFEval prompts
    for table in ("instruction_results", "capability_items", "perplexity_items", "test_losses",
                  "capability_gate"):
        assert warehouse.query(path, f"select count(*) from {table}")[1][0][0] > 0, table
    assert (tmp_path / "home" / "runs" / run_id / "report.md").is_file()

    # Evaluating the same adapter again resumes the run: nothing is generated or scored twice.
    before = {t: warehouse.query(path, f"select count(*) from {t}")[1]
              for t in ("generations", "capability_items", "perplexity_items", "scores")}
    again = subprocess.run(
        [sys.executable, "-m", "lorascope.cli", "eval", str(config), "--adapter", str(adapters)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    log = again.stdout + again.stderr  # the flow's log lines
    assert "tuned: all" in log and "boolq: all items already" in log
    assert before == {t: warehouse.query(path, f"select count(*) from {t}")[1] for t in before}


@pytest.mark.slow
def test_generate_batch_gives_the_greedy_token_ids_of_mlx_lm_batch_generate_on_smollm2(
    session_home
):
    from lorascope.models.loader import load_model, resolve_model

    model, tokenizer = load_model(resolve_model("smollm2-135m", home=session_home))
    prompts = token_lists(tokenizer, VARIED)
    answers, _ = generate_batch(model, tokenizer, prompts, 24, greedy())
    assert [a.token_ids for a in answers] == batch_generate_ids(model, tokenizer, prompts, 24)


def test_sampled_answers_repeat_with_the_same_seed(tiny):
    model, tokenizer = tiny
    prompts = [EvalPrompt(f"q{i}", "in_domain", "", [{"role": "user", "content": q}])
               for i, q in enumerate(VARIED)]
    settings = EvalConfig(max_tokens=8, batch_size=2, temperature=1.0)

    def answers(seed: int) -> list[str]:
        landed: list[dict] = []
        generate_answers(model, tokenizer, prompts, settings, seed, on_rows=landed.extend)
        return [r["output_text"] for r in sorted(landed, key=lambda r: r["prompt_id"])]

    assert answers(0) == answers(0) != answers(1)


def test_chunks_break_where_prompts_get_twice_as_long_or_the_batch_is_full():
    from lorascope.evaluation.generation import length_chunks

    lengths = [30, 35, 50, 60, 61, 130, 140, 900, 950]
    assert [list(r) for r in length_chunks(lengths, 64)] == [
        [0, 1, 2, 3], [4], [5, 6], [7, 8]]
    assert [len(r) for r in length_chunks([40] * 10, 4)] == [4, 4, 2]
    assert length_chunks([], 4) == []
