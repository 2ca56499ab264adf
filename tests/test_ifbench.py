"""IFBench checks through IFBench's own checkers, offline: one passing and one failing response
per instruction of the built-in prompts, strict vs loose, refusals at load, scoring, warehouse."""

from __future__ import annotations

import json

import nltk
import pytest
from conftest import write_comparisons

from lorascope.evaluation import ifbench, ifeval
from lorascope.evaluation.prompt_sets import load_prompt_sets
from lorascope.evaluation.prompts import EvalPrompt, read_eval_prompts
from lorascope.evaluation.scoring import score_generation
from lorascope.warehouse import query, write_rows

# (IFBench instruction id, kwargs, a response that follows it, a response that does not)
CASES = [
    ("count:numbers", {"N": 2}, "About 2 in 3 people agree.", "Yes, it is plausible."),
    ("count:word_count_range", {"min_words": 20, "max_words": 40},
     "A lighthouse keeper tends the lamp every night, winds the clockwork, cleans the lens, "
     "logs the weather and watches the sea for ships in trouble.",
     "He keeps the light on."),
    ("count:unique_word_count", {"N": 25},
     "Sunlight hits tiny air molecules, which scatter short blue waves far more than long red "
     "ones, so our eyes see blue light coming from every part of the daytime sky.",
     "Blue light scatters more."),
    ("count:conjunctions", {"small_n": 3}, "I read and rest, but I also walk or swim.",
     "I read and rest."),
    ("count:person_names", {"N": 2}, "Emma and Liam built it.", "Two friends built it."),
    ("count:pronouns", {"N": 6}, "She helped me and my dad when we moved; he thanked her.",
     "A neighbour helped."),
    ("count:punctuation", {}, "Wow; we won: the cake, the prize. Really?! Yes! Right?",
     "We won the cake contest!"),
    ("ratio:sentence_type", {}, "I swam. It was cold. Did I like it?", "I swam. Did I like it?"),
    ("ratio:sentence_balance", {}, "We hid. Was she surprised? Yes she was!",
     "We hid. She was surprised."),
    ("words:repeats", {"small_n": 2}, "Trains come and go.", "Go go go now."),
    ("words:words_position", {"keyword": "truly"}, "I truly love rainy days, truly.",
     "I love rainy days."),
    ("words:paragraph_last_first", {}, "Coffee is what I want, coffee.", "Coffee is warm."),
    ("words:odd_even_syllables", {}, "Sun sinking low", "The sun sets"),
    ("words:no_consecutive", {}, "Quiet rooms hold old books.", "Silent shelves hold books."),
    ("sentence:keyword", {"word": "garden", "N": 2},
     "Spring is here. The garden blooms. Birds sing.",
     "Spring is here. Birds sing. The garden blooms."),
    ("sentence:increment", {"small_n": 2}, "The cat woke. It stretched and yawned slowly.",
     "The cat woke. It yawned."),
    ("format:options", {"options": "yes/no/maybe"}, "Yes.", "Yes, botanically it is a fruit."),
    ("format:output_template", {},
     "My Answer: Greener. My Conclusion: Good. Future Outlook: Bright.",
     "Cities will be greener."),
    ("format:list", {"sep": "SEPARATOR"}, "Towel SEPARATOR Sunscreen SEPARATOR Hat",
     "Towel, sunscreen, hat."),
    ("format:emoji", {}, "Autumn is crisp 🍂. Leaves fall 🍁.", "Autumn is crisp. Leaves fall."),
    ("format:title_case", {}, "Lost Dog Finds Way Home", "Lost dog finds way home"),
    ("format:no_bullets_bullets", {},
     "Study daily. Sleep well.\n* Use flashcards\n* Take breaks",
     "* Use flashcards\n* Take breaks"),
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", "10, 14, 21, 28, 35, 42, 49"),
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a haiku about autumn leaves."},
     "Compose a haiku about autumn leaves.", "Leaves fall softly down."),
]


def instruction(name: str, **kwargs) -> dict:
    return {"id": ifbench.PREFIX + name, "kwargs": kwargs}


def write_prompts(path, *instruction_lists) -> None:
    path.write_text("".join(
        json.dumps({"id": f"p{n}", "messages": [{"role": "user", "content": "Hi"}],
                    "instructions": instructions}) + "\n"
        for n, instructions in enumerate(instruction_lists)
    ))


@pytest.mark.parametrize(("name", "kwargs", "followed", "broken"), CASES,
                         ids=[case[0] for case in CASES])
def test_checker_passes_the_following_response_and_fails_the_other(
    name, kwargs, followed, broken
):
    instructions = [instruction(name, **kwargs)]
    (good,) = ifbench.check_instructions("prompt", instructions, followed)
    (bad,) = ifbench.check_instructions("prompt", instructions, broken)
    assert (good.instruction_id, good.strict, good.loose) == (ifbench.PREFIX + name, True, True)
    assert (bad.strict, bad.loose) == (False, False)


def test_the_cases_cover_every_instruction_of_the_builtin_prompts():
    prompts = read_eval_prompts(ifbench.BUILTIN_PROMPTS)
    used = {i["id"] for prompt in prompts for i in prompt.instructions}
    assert used == {ifbench.PREFIX + case[0] for case in CASES}


def test_builtin_prompts_load_resolve_and_carry_ifbench_phrasing():
    prompts = read_eval_prompts(ifbench.BUILTIN_PROMPTS)  # validates every instruction
    assert [p.prompt_id for p in prompts] == [f"ifbench-{n:02d}" for n in range(1, 25)]
    assert {p.category.split(":")[1] for p in prompts} == {
        "count", "ratio", "words", "sentence", "format", "custom", "repeat"}
    for prompt in prompts:
        assert prompt.domain == "out_of_domain" and prompt.category.startswith("ifbench:")
        for item in prompt.instructions:
            assert item["id"] in ifbench.known_instruction_ids()
            with ifbench.offline():
                description = ifbench.build_checker(item).build_description(**item["kwargs"])
            assert description in prompt.user_text


def test_prompt_sets_add_the_builtin_ifbench_prompts_when_named(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "Hi"}]}))
    prompts = load_prompt_sets(["mine", "ifeval", "ifbench"], list, lambda _: path)
    assert len(prompts) == 1 + 30 + 24
    assert [p.prompt_id for p in prompts[-24:]] == [f"ifbench-{n:02d}" for n in range(1, 25)]


def test_ifbench_and_ifeval_ids_never_collide():
    assert not ifbench.known_instruction_ids() & ifeval.known_instruction_ids()
    assert not set(ifbench.registry()) & ifeval.known_instruction_ids()


def test_a_checker_that_needs_missing_nltk_data_is_refused_with_file_and_line(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # no tagger, whatever is installed
    path = tmp_path / "prompts.jsonl"
    write_prompts(path, [instruction("count:numbers", N=1)], [instruction("words:start_verb")])
    with pytest.raises(ValueError, match=(
        r"prompts.jsonl:2: IFBench instruction 'ifbench:words:start_verb' cannot be scored "
        r"offline: its checker needs NLTK's 'taggers/averaged_perceptron_tagger_eng'"
    )):
        read_eval_prompts(path)


def test_nltk_data_refusal_lifts_once_that_data_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    assert ifbench.offline_refusal("ifbench:ratio:stop_words") is not None
    (tmp_path / "corpora" / "stopwords").mkdir(parents=True)
    assert ifbench.offline_refusal("ifbench:ratio:stop_words") is None
    assert ifbench.offline_refusal("ifbench:count:numbers") is None


@pytest.mark.parametrize(("item", "message"), [
    (instruction("count:numberz", N=1), r"prompts.jsonl:1: unknown IFBench instruction"),
    ({"id": "count:numbers", "kwargs": {"N": 1}},
     r"prompts.jsonl:1: unknown IFEval instruction .*IFBench ids are written 'ifbench:"),
    (instruction("count:numbers"),
     r"prompts.jsonl:1: .*takes exactly the kwargs \['N'\], got \[\]"),
    (instruction("count:numbers", N=1, M=2), r"do not work.*unexpected keyword argument 'M'"),
    (instruction("custom:multiples", start=10), r"takes exactly the kwargs \[\], got \['start'\]"),
    (instruction("count:numbers", N="two"), r"kwargs \{'N': 'two'\} do not work"),
    (instruction("repeat:repeat_change"), r"do not work.*prompt_to_repeat must be set"),
])
def test_unknown_or_badly_configured_instructions_are_refused_with_the_line(
    tmp_path, item, message
):
    path = tmp_path / "prompts.jsonl"
    write_prompts(path, [item])
    with pytest.raises(ValueError, match=message):
        read_eval_prompts(path)


def test_loose_forgives_a_chatty_first_line_that_strict_counts():
    (result,) = ifbench.check_instructions(
        "p", [instruction("count:numbers", N=2)], "Here are 3 facts:\nAbout 2 in 3 agree."
    )
    assert (result.strict, result.loose) == (False, True)


def test_a_response_a_checker_cannot_handle_counts_as_not_followed():
    # IFBench 26.3's ratio:overlap divides by the response's character trigrams: none in "ok".
    item = instruction("ratio:overlap", reference_text="ok then", percentage=50)
    checker = ifbench.build_checker(item)
    with pytest.raises(ZeroDivisionError):
        checker.check_following("ok")
    (result,) = ifbench.check_instructions("p", [item], "ok")
    assert (result.strict, result.loose) == (False, False)


def test_score_generation_routes_each_instruction_to_its_family_in_prompt_order():
    prompt = EvalPrompt(
        "mixed", "out_of_domain", "ifbench:count", [{"role": "user", "content": "Facts?"}],
        instructions=[instruction("count:numbers", N=2),
                      {"id": "punctuation:no_comma", "kwargs": {}},
                      instruction("format:title_case")],
    )
    result = score_generation(prompt, "Facts: 2 of 3 agree", "stop")
    assert [(r.instruction_id, r.strict) for r in result.instructions] == [
        ("ifbench:count:numbers", True), ("punctuation:no_comma", True),
        ("ifbench:format:title_case", False),
    ]
    assert {k: v for k, v in result.scores.items() if "prompt" in k} == {
        "ifeval_prompt_strict": 1.0, "ifeval_prompt_loose": 1.0,
        "ifbench_prompt_strict": 0.0, "ifbench_prompt_loose": 0.0,
    }
    assert [f.instruction_id for f in result.failures if f.mode == "format_violation"] == [
        "ifbench:format:title_case"]


def test_instruction_following_view_pools_each_family_on_its_own(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    verdicts = {  # (prompt, index, id): (base strict, tuned strict); loose = strict here
        ("e", 0, "punctuation:no_comma"): (True, True),
        ("b", 0, "ifbench:count:numbers"): (False, True),
        ("b", 1, "ifbench:format:list"): (False, False),
    }
    write_rows(path, "instruction_results", [
        {"evaluation_id": "r", "run_id": "r", "variant": variant, "prompt_id": p,
         "instruction_index": i,
         "instruction_id": name, "strict": ok[v], "loose": ok[v]}
        for (p, i, name), ok in verdicts.items()
        for v, variant in enumerate(("base", "tuned"))
    ])
    write_comparisons(path, "r")
    rows = query(path, "select family, level, instruction_type, n, base_acc, tuned_acc "
                       "from instruction_following where strictness = 'strict' "
                       "order by family, level desc, instruction_type")[1]
    assert rows == [
        ("ifbench", "prompt", "(all)", 1, 0.0, 0.0),
        ("ifbench", "instruction", "(all)", 2, 0.0, 0.5),
        ("ifbench", "instruction", "count", 1, 0.0, 1.0),
        ("ifbench", "instruction", "format", 1, 0.0, 0.0),
        ("ifeval", "prompt", "(all)", 1, 1.0, 1.0),
        ("ifeval", "instruction", "(all)", 1, 1.0, 1.0),
        ("ifeval", "instruction", "punctuation", 1, 1.0, 1.0),
    ]
