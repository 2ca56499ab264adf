"""The training/evaluation contamination check: lm-eval's normalization and 13-grams, what is
flagged and what is not, and the step over a real run folder into a real warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.config import load_config
from lorascope.data.sources import load_splits
from lorascope.evaluation import prompts as eval_prompts
from lorascope.evaluation.capability import load_task
from lorascope.evaluation.contamination import (
    EvalItem,
    build_index,
    contamination_run,
    ngrams,
    overlap_rows,
    prompt_item,
    record_texts,
)
from lorascope.evaluation.prompts import EvalPrompt
from lorascope.runs import start_run

TRAINING = [
    "Photosynthesis is the process by which green plants use sunlight, water and carbon "
    "dioxide to make glucose and release oxygen into the air around them.",
    "The mitochondria break down sugar molecules during cellular respiration, releasing the "
    "energy that the cell stores as ATP for later use.",
]
COPY = TRAINING[0]
PARAPHRASE = ("Green plants turn light, water and CO2 into sugar through photosynthesis, and "
              "they give off oxygen while doing so.")


def item(*texts: str, item_id: str = "x") -> EvalItem:
    return EvalItem("demo", "prompt", item_id, list(texts))


def test_ngrams_are_lm_evals_janitor_normalization_and_word_ngrams():
    from lm_eval.decontamination.janitor import Janitor, word_ngrams

    text = "Hello, World! It's   the 13-gram test: café ÉCOLE\nand (more) words; " * 3
    assert ngrams(text) == list(word_ngrams(Janitor().normalize_string(text), 13))


def test_a_training_record_copied_into_the_eval_prompts_is_flagged_with_its_ngram():
    (row,) = overlap_rows(build_index(TRAINING), [item("Explain this.", COPY)])
    assert row["contaminated"] and row["overlapping"] == row["ngrams"] > 0
    assert row["example_ngram"] == "photosynthesis is the process by which green plants use " \
                                   "sunlight water and carbon"


def test_a_paraphrase_sharing_no_13_gram_is_not_flagged():
    (row,) = overlap_rows(build_index(TRAINING), [item(PARAPHRASE)])
    assert row["ngrams"] > 0
    assert (row["contaminated"], row["overlapping"], row["example_ngram"]) == (False, 0, None)


def test_case_and_punctuation_do_not_hide_a_copy():
    (row,) = overlap_rows(build_index(TRAINING), [item(COPY.upper().replace(",", ";"))])
    assert row["contaminated"]


def test_an_ngram_never_spans_two_texts_of_an_item():
    words = TRAINING[1].split()
    (row,) = overlap_rows(build_index(TRAINING), [item(" ".join(words[:7]) + "?",
                                                       " ".join(words[7:13]) + ".")])
    assert not row["contaminated"]


def test_a_short_text_is_flagged_when_it_occurs_whole_in_a_training_record():
    short = "Which process releases the energy that the cell stores"  # 9 words, no 13-gram
    flagged, clean = overlap_rows(build_index(TRAINING), [
        item("releasing the energy that the cell stores as ATP", item_id="a"),
        item(short, item_id="b")])
    assert (flagged["ngrams"], flagged["contaminated"]) == (1, True)
    assert flagged["example_ngram"] == "releasing the energy that the cell stores as atp"
    assert (clean["ngrams"], clean["contaminated"]) == (1, False)


def test_a_text_under_eight_words_is_not_checked():
    (row,) = overlap_rows(build_index(TRAINING), [item("the energy that the cell stores")])
    assert (row["ngrams"], row["contaminated"]) == (0, False)


def test_a_prompt_is_checked_on_its_messages_and_reference():
    prompt = EvalPrompt(prompt_id="p1", domain="in_domain", category="", source="demo",
                        messages=[{"role": "user", "content": "Explain photosynthesis."}],
                        reference=COPY)
    assert prompt_item(prompt).texts == ["Explain photosynthesis.", COPY]


@pytest.fixture(scope="module")
def tiny_run(tiny_mistral_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real run folder (the tiny config's run started: model resolved, data prepared) with
    its test prompts, a train record copied in as prompt `leaked-0`, and 6 arc_easy items,
    checked by the step."""
    folder = tmp_path_factory.mktemp("contamination")
    home = home_with_tiny_mistral(folder / "home", tiny_mistral_dir)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(TINY_RUN))
    context = start_run(load_config(config_path), home, log=lambda _: None)
    splits = load_splits(context.paths.data)
    copied = splits["train"][0]
    *turns, answer = copied.messages
    leaked = EvalPrompt(prompt_id="leaked-0", domain="in_domain", category="", source="leaked",
                        messages=turns, reference=answer["content"])
    prompts = [*eval_prompts.test_split_prompts(splits["test"][:10]), leaked]
    checked = contamination_run(context, prompts, {"arc_easy": load_task("arc_easy", 6)},
                                log=lambda _: None)
    return context, copied, checked, len(prompts)


def test_the_step_checks_every_prompt_and_capability_item(tiny_run):
    _, _, checked, prompts = tiny_run
    assert checked == prompts + 6


def test_the_step_flags_a_train_record_copied_into_a_real_runs_eval_prompts(tiny_run):
    tiny_run, copied, _, _ = tiny_run
    rows = warehouse.select_rows(tiny_run.warehouse, "contamination",
                                 evaluation_id=tiny_run.evaluation_id)
    (leak,) = [row for row in rows if row["item_id"] == "leaked-0"]
    assert leak["contaminated"] and leak["example_ngram"] in {
        gram for text in record_texts(copied) for gram in ngrams(text)}
    summary = {row["eval_set"]: row for row in warehouse.select_rows(
        tiny_run.warehouse, "contamination_summary", evaluation_id=tiny_run.evaluation_id)}
    assert (summary["leaked"]["items"], summary["leaked"]["contaminated"]) == (1, 1)
    assert summary["leaked"]["contaminated_share"] == 1.0
    assert summary["arc_easy"]["kind"] == "capability" and summary["arc_easy"]["items"] == 6


def test_the_report_and_saved_query_show_the_evaluations_contamination(tiny_run):
    tiny_run = tiny_run[0]
    columns, rows = warehouse.query(tiny_run.warehouse, warehouse.report_query("contamination"),
                                    {"evaluation_id": tiny_run.evaluation_id})
    assert "evaluation_id" not in columns and len(rows) == 3  # test, leaked, arc_easy
    columns, rows = warehouse.query(tiny_run.warehouse, warehouse.saved_query("contamination"))
    assert {row[columns.index("eval_set")] for row in rows} == {"test", "leaked", "arc_easy"}
