"""IFEval checks through lm-eval's own checkers, offline: one passing and one failing response
per instruction type, strict vs loose, prompt level, and the built-in prompts."""

from __future__ import annotations

import pytest

from lorascope.evaluation import ifeval

# (instruction id, kwargs, a response that follows it, a response that does not)
CASES = [
    ("keywords:existence", {"keywords": ["collar", "garden"]},
     "The cat with a red collar hid in the garden.", "The cat is lost."),
    ("keywords:frequency", {"keyword": "rain", "frequency": 3, "relation": "at least"},
     "Rain, rain and more rain.", "The rain fell."),
    ("keywords:forbidden_words", {"forbidden_words": ["wheel", "pedal"]},
     "You push with your feet.", "You push the pedal."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 4, "let_relation": "at least"},
     "Zany zebras zigzag lazily.", "Zebras run."),
    ("language:response_language", {"language": "fr"},
     "Paris est la capitale de la France et une très belle ville au bord de la Seine.",
     "Paris is the capital of France and a very beautiful city on the river Seine."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith saw the light scatter. Blue scatters most.",
     "Dr. Smith went to Washington. He arrived at 5 p.m. on Monday! Was it fun? Yes."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "Walking is good.\n***\nIt is free.", "Walking is good. It is free."),
    ("length_constraints:number_words", {"num_words": 40, "relation": "less than"},
     "Plants make food from light.", "word " * 50),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "rivers"},
     "Water flows downhill.\n\nRivers carry it to the sea.",
     "Water flows downhill.\n\nStreams carry it to the sea."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], I apply for [position].", "Dear Sir, I apply."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Cook slowly.\nP.S. Have fun.", "Cook slowly."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3},
     "* water\n* tea\n* juice", "* water\n* tea"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes it is."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*Saturday* is for *rest*.", "Saturday is for rest."),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nFloat.\nSECTION 2\nKick.", "Float, then kick."),
    ("detectable_format:json_format", {}, '{"name": "Ann", "age": 30}', "name: Ann, age: 30"),
    ("detectable_format:title", {}, "<<The Sea>>\nWaves roll.", "The Sea\nWaves roll."),
    ("combination:two_responses", {}, "Sweet Rise\n******\nFlour Power", "Sweet Rise"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Name three primary colours."},
     "Name three primary colours. Red, blue and yellow.", "Red, blue and yellow."),
    ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"},
     "The sun rose. Is there anything else I can help with?", "The sun rose."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "BIG SALE at our shop today", "Big sale at our shop today"),
    ("change_case:english_capital", {},
     "CAREFUL, THE FLOOR IS WET AND VERY SLIPPERY TODAY.",
     "Careful, the floor is wet and very slippery today."),
    ("change_case:english_lowercase", {},
     "the library is quiet and calm today, and nobody speaks.",
     "The library is quiet and calm today, and nobody speaks."),
    ("punctuation:no_comma", {}, "Lava comes out of a volcano.", "Lava, hot and red, flows."),
    ("startend:quotation", {}, '"You can do it!"', "You can do it!"),
]


def test_the_cases_cover_every_ifeval_instruction_lm_eval_knows():
    assert {case[0] for case in CASES} == ifeval.known_instruction_ids()


@pytest.mark.parametrize(("instruction_id", "kwargs", "followed", "broken"), CASES,
                         ids=[case[0] for case in CASES])
def test_checker_passes_the_following_response_and_fails_the_other(
    instruction_id, kwargs, followed, broken
):
    instructions = [{"id": instruction_id, "kwargs": kwargs}]
    (good,) = ifeval.check_instructions("prompt", instructions, followed)
    (bad,) = ifeval.check_instructions("prompt", instructions, broken)
    assert (good.strict, good.loose) == (True, True)
    assert (bad.strict, bad.loose) == (False, False)


def test_punkt_tab_is_written_in_nltk_layout_and_splits_sentences_offline(tmp_path):
    import nltk

    folder = ifeval.install_punkt_tab(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(ifeval.PUNKT_FILES)
    nltk.data.path.insert(0, str(tmp_path))
    try:
        sentences = nltk.sent_tokenize(
            "Dr. Smith went to Washington. He arrived at 5 p.m. on Monday! Was it fun? Yes."
        )
    finally:
        nltk.data.path.remove(str(tmp_path))
    assert len(sentences) == 4


def test_loose_forgives_a_chatty_first_line_that_strict_counts():
    (result,) = ifeval.check_instructions(
        "p", [{"id": "punctuation:no_comma", "kwargs": {}}],
        "Sure, here it is:\nLava comes out of a volcano.",
    )
    assert (result.strict, result.loose) == (False, True)


def test_loose_forgives_markdown_asterisks_around_a_title_line():
    (result,) = ifeval.check_instructions(
        "p", [{"id": "startend:end_checker", "kwargs": {"end_phrase": "Good luck!"}}],
        "Be on time.\n**Good luck!**",
    )
    assert (result.strict, result.loose) == (False, True)


def test_an_empty_response_follows_no_instruction_even_a_forbidden_word_one():
    (result,) = ifeval.check_instructions(
        "p", [{"id": "keywords:forbidden_words", "kwargs": {"forbidden_words": ["x"]}}], "  "
    )
    assert (result.strict, result.loose) == (False, False)


def test_prompt_level_needs_every_instruction_followed():
    results = ifeval.check_instructions(
        "p",
        [{"id": "punctuation:no_comma", "kwargs": {}},
         {"id": "change_case:english_lowercase", "kwargs": {}}],
        "Sure here it is:\nthe leaves fall slowly and quietly in autumn",
    )
    assert [(r.strict, r.loose) for r in results] == [(True, True), (False, True)]
    assert ifeval.prompt_scores(results) == {
        "ifeval_prompt_strict": 0.0, "ifeval_prompt_loose": 1.0,
    }


def test_builtin_prompts_are_valid_unique_and_cover_all_instruction_types():
    rows = ifeval.builtin_prompt_rows()
    for row in rows:
        ifeval.validate_instructions(row["instructions"], row["id"])
    assert len({row["id"] for row in rows}) == len(rows)
    covered = {i["id"] for row in rows for i in row["instructions"]}
    assert covered == ifeval.known_instruction_ids()
    assert all(row["category"].startswith("ifeval:") for row in rows)


def test_validate_instructions_names_the_place_and_the_known_ids():
    with pytest.raises(ValueError, match=r"prompts.jsonl:3: unknown IFEval instruction.*no_comma"):
        ifeval.validate_instructions([{"id": "punctuation:no_commas"}], "prompts.jsonl:3")
