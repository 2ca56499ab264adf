"""The pairwise judge: MT-Bench's prompts (pair-v2, reference-guided pair-math-v1) and verdict
rules, the win rate and its interval (in Python and in the judge_win_rate view), the agreement
of two judges (judge_agreement), MT-Bench's questions and judge references, eval.judge as one
judge or a list, and judging through a real mlx_lm.server on tiny-mistral into a real DuckDB
warehouse."""

from __future__ import annotations

import ast
import json
import socket
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import cohens_kappa

from lorascope import warehouse
from lorascope.config import ConfigError, parse_config
from lorascope.evaluation.judge import (
    JUDGE_PROMPT_ID,
    JUDGE_PROMPT_VERSION,
    MATH_PROMPT_TEMPLATE,
    MATH_SYSTEM_PROMPT,
    PAIR_MATH_V1,
    PROMPT_TEMPLATE,
    REFERENCE_CATEGORIES,
    SYSTEM_PROMPT,
    JudgeEndpoint,
    JudgeError,
    JudgePair,
    combine_orders,
    judge_messages,
    judge_pairs,
    make_pairs,
    order_verdict,
    pair_messages,
    parse_verdict,
    wilson_interval,
    win_rate,
)
from lorascope.evaluation.mtbench import (
    llm_judge_data_dir,
    mtbench_judge_references,
    mtbench_prompt_rows,
)
from lorascope.evaluation.prompts import EvalPrompt, eval_prompt
from lorascope.evaluation.steps import judge_run
from lorascope.runs import RunContext

# pair-v2's version before reference-guided judging: verdicts stored then still resume.
PAIR_V2_VERSION_0009 = "mtbench-pair-v2:6dce2a488f97"


def fastchat_judge_prompts() -> dict[str, dict]:
    path = llm_judge_data_dir() / "judge_prompts.jsonl"
    return {row["name"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_judge_prompts_are_mtbench_pair_v2_and_pair_math_v1_verbatim() -> None:
    prompts = fastchat_judge_prompts()
    assert prompts["pair-v2"]["system_prompt"] == SYSTEM_PROMPT
    assert prompts["pair-v2"]["prompt_template"] == PROMPT_TEMPLATE
    assert prompts["pair-math-v1"]["system_prompt"] == MATH_SYSTEM_PROMPT
    assert prompts["pair-math-v1"]["prompt_template"] == MATH_PROMPT_TEMPLATE
    assert JUDGE_PROMPT_VERSION.startswith(f"{JUDGE_PROMPT_ID}:")
    assert JUDGE_PROMPT_VERSION == PAIR_V2_VERSION_0009
    assert PAIR_MATH_V1.version.startswith("mtbench-pair-math-v1:")
    assert len(PAIR_MATH_V1.version.rsplit(":", 1)[1]) == 12


def test_reference_categories_are_fastchats_need_ref_cats_in_code_and_config() -> None:
    common = (llm_judge_data_dir().parent / "common.py").read_text()
    (assignment,) = [node for node in ast.parse(common).body if isinstance(node, ast.Assign)
                     and getattr(node.targets[0], "id", None) == "NEED_REF_CATS"]
    need_ref_cats = ast.literal_eval(assignment.value)
    assert list(REFERENCE_CATEGORIES) == need_ref_cats
    config = parse_config({"eval": {"judge": {"url": "http://127.0.0.1:1/v1", "model": "j"}}})
    assert config.eval.judge.reference_categories == need_ref_cats


def test_judge_messages_show_question_and_both_answers_under_their_letters() -> None:
    system, user = judge_messages("Q?", "first answer", "second answer")
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert user["content"].startswith("[User Question]\nQ?\n\n")
    assert "[The Start of Assistant A's Answer]\nfirst answer\n" in user["content"]
    assert "[The Start of Assistant B's Answer]\nsecond answer\n" in user["content"]


def test_judge_messages_with_a_reference_are_pair_math_v1_showing_it() -> None:
    system, user = judge_messages("2+2?", "4", "5", reference="The answer is 4.")
    assert system == {"role": "system", "content": MATH_SYSTEM_PROMPT}
    assert user["content"] == MATH_PROMPT_TEMPLATE.format(
        question="2+2?", ref_answer_1="The answer is 4.", answer_a="4", answer_b="5")
    assert "[The Start of Reference Answer]\nThe answer is 4.\n" in user["content"]
    assert judge_messages("Q?", "a", "b", reference="") == judge_messages("Q?", "a", "b")


def test_pair_messages_put_base_then_tuned_under_a_by_order() -> None:
    pair = JudgePair("p", "Q?", "base answer", "tuned answer")
    assert pair_messages(pair, "base_first") == judge_messages("Q?", "base answer", "tuned answer")
    assert pair_messages(pair, "tuned_first") == judge_messages("Q?", "tuned answer", "base answer")


def test_parse_verdict_checks_a_then_b_then_c_like_fastchat() -> None:
    assert parse_verdict("B is clearer. [[B]]") == "B"
    assert parse_verdict("[[B]] at first, but on reflection [[A]]") == "A"
    assert parse_verdict("[[C]] ... no: [[B]]") == "B"
    assert parse_verdict("Equal. [[C]]") == "C"
    # FastChat's rule, quirk included: a reply quoting the format reads as A.
    assert parse_verdict('Format: "[[A]]" if A is better... Both are equal. [[C]]') == "A"
    assert parse_verdict("A is better, verdict: [A]") is None
    assert parse_verdict("") is None


def test_make_pairs_gives_a_reference_only_in_reference_categories() -> None:
    def prompt(prompt_id: str, category: str, reference: str | None) -> EvalPrompt:
        return EvalPrompt(prompt_id, "out_of_domain", category,
                          [{"role": "user", "content": f"question {prompt_id}"}], reference)

    prompts = [prompt("mt-math", "mtbench:math", "own"), prompt("mt-writing", "mtbench:writing",
               "own"), prompt("user-math", "math", "user ref"), prompt("no-ref", "coding", None),
               prompt("other", "geography", "Paris")]
    outputs = {p.prompt_id: "answer" for p in prompts}
    references = {"mt-math": "judge ref", "mt-writing": "judge ref"}
    pairs = make_pairs(prompts, outputs, outputs, REFERENCE_CATEGORIES, references)
    assert {p.prompt_id: p.reference for p in pairs} == {
        "mt-math": "judge ref", "mt-writing": None, "user-math": "user ref", "no-ref": None,
        "other": None}
    assert [p.judge_prompt.prompt_id for p in pairs] == [
        "mtbench-pair-math-v1", "mtbench-pair-v2", "mtbench-pair-math-v1", "mtbench-pair-v2",
        "mtbench-pair-v2"]
    assert all(p.reference is None for p in make_pairs(prompts, outputs, outputs, [], references))


def test_order_verdict_maps_letters_to_variants_by_order() -> None:
    assert [order_verdict("base_first", m) for m in ("A", "B", "C", None)] == [
        "base", "tuned", "tie", "unparsed"]
    assert [order_verdict("tuned_first", m) for m in ("A", "B", "C", None)] == [
        "tuned", "base", "tie", "unparsed"]


def test_combine_orders_scores_like_mtbench() -> None:
    assert combine_orders("tuned", "tuned") == "tuned"
    assert combine_orders("base", "base") == "base"
    assert combine_orders("tie", "tie") == "tie"
    assert combine_orders("base", "tuned") == "tie"  # position bias: inconsistent orders
    assert combine_orders("tuned", "tie") == "tie"
    assert combine_orders("unparsed", "tuned") == "unparsed"
    assert combine_orders("tie", "unparsed") == "unparsed"


@pytest.mark.parametrize(("k", "n"), [(0, 5), (3, 10), (7, 7), (41, 80)])
def test_wilson_interval_matches_scipy_on_whole_successes(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    # scipy uses the exact normal quantile 1.95996..., we use 1.96
    assert low == pytest.approx(expected.low, abs=1e-4)
    assert high == pytest.approx(expected.high, abs=1e-4)


def test_win_rate_counts_ties_half_and_leaves_out_unparsed() -> None:
    result = win_rate(["tuned", "tuned", "base", "tie", "unparsed"])
    assert (result.prompts, result.tuned_wins, result.base_wins, result.ties, result.unparsed) \
        == (4, 2, 1, 1, 1)
    assert result.win_rate == pytest.approx(2.5 / 4)
    assert (result.ci_low, result.ci_high) == pytest.approx(wilson_interval(2.5, 4))
    assert result.ci_low < result.win_rate < result.ci_high
    empty = win_rate(["unparsed"])
    assert (empty.prompts, empty.unparsed, empty.win_rate, empty.ci_low) == (0, 1, None, None)


def judgment_rows(
    evaluation_id: str, verdicts: list[tuple[str, str]], created_at: datetime | None = None,
    judge_model: str = "judge", version: str = JUDGE_PROMPT_VERSION,
) -> list[dict]:
    return [
        {"evaluation_id": evaluation_id, "run_id": "run", "prompt_id": f"p{i}",
         "judge_order": order, "verdict": verdict, "judge_model": judge_model,
         "judge_url": "http://127.0.0.1:1/v1", "judge_prompt_version": version,
         "raw_reply": "", "created_at": created_at}
        for i, pair in enumerate(verdicts)
        for order, verdict in zip(("base_first", "tuned_first"), pair, strict=True)
    ]


def view_rows(path: Path, evaluation_id: str, view: str = "judge_win_rate") -> list[dict]:
    columns, rows = warehouse.query(
        path, f"select * from {view} where evaluation_id = ? order by all", [evaluation_id])
    return [dict(zip(columns, row, strict=True)) for row in rows]


def assert_view_matches(row: dict, expected) -> None:
    assert (row["prompts"], row["tuned_wins"], row["base_wins"], row["ties"], row["unparsed"]) \
        == (expected.prompts, expected.tuned_wins, expected.base_wins, expected.ties,
            expected.unparsed)
    assert row["win_rate"] == pytest.approx(expected.win_rate)
    assert row["win_rate_ci_low"] == pytest.approx(expected.ci_low)
    assert row["win_rate_ci_high"] == pytest.approx(expected.ci_high)


def test_win_rate_view_and_queries_agree_with_python(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    verdicts = [("tuned", "tuned"), ("tuned", "tie"), ("base", "base"), ("base", "tuned"),
                ("tie", "tie"), ("unparsed", "tuned"), ("tuned", "tuned")]
    warehouse.write_rows(path, "judgments", judgment_rows("e1", verdicts, datetime(2026, 1, 1)))
    warehouse.write_rows(path, "judgments",
                         judgment_rows("e2", [("base", "base")], datetime(2026, 1, 2)))
    (row,) = view_rows(path, "e1")
    assert_view_matches(row, win_rate(combine_orders(*pair) for pair in verdicts))
    assert row["inconsistent"] == 2 and row["judge_prompt_versions"] == JUDGE_PROMPT_VERSION
    (other,) = view_rows(path, "e2")
    assert (other["prompts"], other["win_rate"]) == (1, 0.0)

    columns, rows = warehouse.query(path, warehouse.saved_query("judge_win_rate"))
    assert [r[columns.index("evaluation_id")] for r in rows] == ["e2", "e1"]  # latest first
    columns, rows = warehouse.query(path, warehouse.report_query("judge_win_rate"),
                                    {"evaluation_id": "e1"})
    assert "evaluation_id" not in columns and len(rows) == 1
    assert rows[0][columns.index("win_rate")] == pytest.approx(row["win_rate"])


def test_judgments_refuse_unknown_orders_and_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    (row, _) = judgment_rows("e", [("tuned", "base")])
    with pytest.raises(warehouse.WarehouseError, match="CHECK"):
        warehouse.write_rows(path, "judgments", [{**row, "verdict": "A"}])
    with pytest.raises(warehouse.WarehouseError, match="CHECK"):
        warehouse.write_rows(path, "judgments", [{**row, "judge_order": "a_first"}])


def test_win_rate_view_is_per_judge_and_counts_a_prompt_once_with_its_latest_version(
    tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    old, new = datetime(2026, 1, 1), datetime(2026, 1, 2)
    warehouse.write_rows(path, "judgments", judgment_rows(
        "e", [("base", "base"), ("tuned", "tuned")], old, "judge-1"))
    warehouse.write_rows(path, "judgments", judgment_rows(  # p0 again, under pair-math-v1
        "e", [("tuned", "tuned")], new, "judge-1", PAIR_MATH_V1.version))
    warehouse.write_rows(path, "judgments", judgment_rows(
        "e", [("base", "base"), ("base", "base")], old, "judge-2"))
    first, second = view_rows(path, "e")
    assert (first["judge_model"], first["prompts"], first["tuned_wins"]) == ("judge-1", 2, 2)
    assert first["judge_prompt_versions"] == f"{PAIR_MATH_V1.version}, {JUDGE_PROMPT_VERSION}"
    assert (second["judge_model"], second["prompts"], second["base_wins"]) == ("judge-2", 2, 2)


def test_agreement_view_matches_fastchat_shares_and_statsmodels_kappa(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    outcomes = ["tuned", "tuned", "base", "tie", "tuned", "base", "tie", "tuned"]
    other = ["tuned", "base", "base", "tie", "tie", "base", "tuned", "tuned"]
    warehouse.write_rows(path, "judgments", judgment_rows(
        "e", [(o, o) for o in [*outcomes, "unparsed"]], judge_model="judge-b"))
    warehouse.write_rows(path, "judgments", judgment_rows(
        "e", [(o, o) for o in [*other, "tuned"]], judge_model="judge-a"))
    (row,) = view_rows(path, "e", "judge_agreement")
    assert (row["judge_a"], row["judge_b"], row["both_judged"], row["prompts"]) == (
        "judge-a", "judge-b", 9, 8)
    agree = [a == b for a, b in zip(outcomes, other, strict=True)]
    assert (row["agreements"], row["agreement"]) == (sum(agree), sum(agree) / 8)
    no_ties = [a == b for a, b in zip(outcomes, other, strict=True) if "tie" not in (a, b)]
    assert row["prompts_without_ties"] == len(no_ties)
    assert row["agreement_without_ties"] == pytest.approx(sum(no_ties) / len(no_ties))
    labels = ["tuned", "base", "tie"]
    table = [[sum(1 for a, b in zip(other, outcomes, strict=True) if (a, b) == (x, y))
              for y in labels] for x in labels]
    assert row["cohen_kappa"] == pytest.approx(cohens_kappa(table).kappa)

    columns, rows = warehouse.query(path, warehouse.saved_query("judge_agreement"))
    assert [r[columns.index("judge_b")] for r in rows] == ["judge-b"]
    columns, rows = warehouse.query(path, warehouse.report_query("judge_agreement"),
                                    {"evaluation_id": "e"})
    assert "evaluation_id" not in columns and len(rows) == 1


def test_migration_0013_keeps_old_judgments_and_keys_them_by_judge(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    migrations = Path(warehouse.__file__).parent / "migrations"
    with duckdb.connect(str(path)) as con:  # a warehouse written before 0013
        for version in [v for v in warehouse.MIGRATION_VERSIONS if v < 13]:
            (sql_file,) = migrations.glob(f"{version:04d}_*.sql")
            con.execute(sql_file.read_text())
            con.execute("insert into schema_version values (?, now())", [version])
        con.execute("insert into judgments values ('e', 'run', 'p0', 'base_first', 'tuned', "
                    "'judge', 'http://x/v1', ?, 'reply', '2026-01-01')", [PAIR_V2_VERSION_0009])
    warehouse.write_rows(path, "judgments", [{
        "evaluation_id": "e", "run_id": "run", "prompt_id": "p0", "judge_order": "base_first",
        "verdict": "base", "judge_model": "other judge", "judge_prompt_version":
        PAIR_V2_VERSION_0009, "user_prompt": "[User Question]..."}])
    assert warehouse.query(path, "select judge_model, verdict, raw_reply, user_prompt "
                                 "from judgments order by all")[1] == [
        ("judge", "tuned", "reply", None), ("other judge", "base", None, "[User Question]...")]


def test_eval_judge_is_one_judge_or_a_list_of_distinct_models() -> None:
    judge = {"url": "http://127.0.0.1:1/v1", "model": "a"}
    assert parse_config({"eval": {"judge": judge}}).eval.judge.model == "a"
    judges = parse_config({"eval": {"judge": [judge, {**judge, "model": "b"}]}}).eval.judge
    assert [j.model for j in judges] == ["a", "b"]
    with pytest.raises(ConfigError, match=r"eval\.judge\.list: .*two judges have the model 'a'"):
        parse_config({"eval": {"judge": [judge, judge]}})
    with pytest.raises(ConfigError, match=r"eval\.judge\.list\.1\.modle: unknown key"):
        parse_config({"eval": {"judge": [judge, {**judge, "modle": "b"}]}})


def test_mtbench_prompts_are_80_first_turns_in_8_categories() -> None:
    rows = mtbench_prompt_rows()
    assert len(rows) == 80 and len({r["id"] for r in rows}) == 80
    categories = [r["category"] for r in rows]
    assert {c: categories.count(c) for c in categories} == {
        f"mtbench:{c}": 10 for c in ("writing", "roleplay", "reasoning", "math", "coding",
                                     "extraction", "stem", "humanities")}
    first = rows[0]
    assert first["id"] == "mtbench-81" and first["domain"] == "out_of_domain"
    assert first["messages"] == [{"role": "user", "content": (
        "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting "
        "cultural experiences and must-see attractions.")}]
    by_id = {r["id"]: r for r in rows}
    assert by_id["mtbench-101"]["reference"] == "You are in second place."
    assert "reference" not in first
    prompts = [eval_prompt(row, "mtbench") for row in rows]
    assert prompts[0].user_text == first["messages"][0]["content"]


def test_mtbench_judge_references_are_fastchats_for_its_reference_categories() -> None:
    references = mtbench_judge_references()
    categories = {row["id"]: row["category"] for row in mtbench_prompt_rows()}
    needing = {prompt_id for prompt_id, category in categories.items()
               if category.split(":")[1] in REFERENCE_CATEGORIES}
    assert set(references) == needing and len(needing) == 30
    assert references["mtbench-101"].startswith(
        "If you have just overtaken the second person, your current position is now second")


# --- through a real mlx_lm.server -----------------------------------------------------------


@pytest.fixture
def closed_url():
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def mtbench_pairs(count: int):
    prompts = [eval_prompt(row, "mtbench") for row in mtbench_prompt_rows()[:count]]
    base = {p.prompt_id: f"A short base answer to {p.prompt_id}." for p in prompts}
    tuned = {p.prompt_id: f"A longer, tuned answer to {p.prompt_id}, with detail." for p in prompts}
    return make_pairs(prompts, base, tuned)


def stored(path: Path) -> list[tuple]:
    return warehouse.query(
        path, "select prompt_id, judge_order, verdict, judge_model, judge_url, "
        "judge_prompt_version, raw_reply, created_at from judgments order by all")[1]


def test_judges_each_prompt_in_both_orders_through_mlx_lm_server(
    judge_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    endpoint = JudgeEndpoint(url=judge_url, model="default_model", max_tokens=16)
    messages: list[str] = []
    assert judge_pairs(path, "eval-1", "run-1", mtbench_pairs(3), endpoint, messages.append) == 3

    rows = stored(path)
    assert [(r[0], r[1]) for r in rows] == [
        (f"mtbench-{i}", order) for i in (81, 82, 83) for order in ("base_first", "tuned_first")]
    assert {r[2] for r in rows} <= {"base", "tuned", "tie", "unparsed"}
    assert {r[3:6] for r in rows} == {("default_model", judge_url, JUDGE_PROMPT_VERSION)}
    assert all(order_verdict(r[1], parse_verdict(r[6])) == r[2] for r in rows)  # the reply
    assert all(r[7] is not None for r in rows)
    assert len(messages) == 4
    assert messages[-1].startswith("judge default_model 3/3 mtbench-83: base_first")

    verdicts = {(r[0], r[1]): r[2] for r in rows}
    outcomes = [combine_orders(verdicts[p, "base_first"], verdicts[p, "tuned_first"])
                for p in ("mtbench-81", "mtbench-82", "mtbench-83")]
    (row,) = view_rows(path, "eval-1")
    assert row["prompts"] + row["unparsed"] == 3
    expected = win_rate(outcomes)
    assert (row["prompts"], row["unparsed"]) == (expected.prompts, expected.unparsed)
    if expected.prompts:
        assert_view_matches(row, expected)
    else:
        assert row["win_rate"] is None


def test_unreachable_judge_is_one_error_keeps_verdicts_and_resumes(
    judge_url: str, closed_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    pairs = mtbench_pairs(4)
    served = JudgeEndpoint(url=judge_url, model="default_model", max_tokens=16)
    assert judge_pairs(path, "eval-1", "run-1", pairs[:2], served, lambda _: None) == 2
    before = stored(path)
    assert len(before) == 4

    down = JudgeEndpoint(url=closed_url, model="default_model", max_tokens=16,
                         timeout_seconds=5, max_retries=1)
    with pytest.raises(JudgeError) as caught:
        judge_pairs(path, "eval-1", "run-1", pairs, down, lambda _: None)
    message = str(caught.value)
    assert closed_url in message and "'default_model'" in message
    assert "check that the server is running" in message and "2 of 4 prompts" in message
    assert "\n" not in message
    assert stored(path) == before

    messages: list[str] = []
    assert judge_pairs(path, "eval-1", "run-1", pairs, served, messages.append) == 2
    assert "2 prompts to judge in both orders (2 already judged;" in messages[0]
    after = stored(path)
    assert len(after) == 8 and set(before) <= set(after)  # the first two were not judged again
    assert judge_pairs(path, "eval-1", "run-1", pairs, served, lambda _: None) == 0


def test_model_the_server_does_not_serve_is_one_error(judge_url: str, tmp_path: Path) -> None:
    endpoint = JudgeEndpoint(url=judge_url, model="no-such-model", max_tokens=16, max_retries=0)
    with pytest.raises(JudgeError, match=r"answered HTTP 404.*eval\.judge\.model"):
        judge_pairs(tmp_path / "w.duckdb", "e", "r", mtbench_pairs(1), endpoint, lambda _: None)
    assert stored(tmp_path / "w.duckdb") == []


def test_missing_api_key_variable_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LORASCOPE_TEST_JUDGE_KEY", raising=False)
    endpoint = JudgeEndpoint(url="http://127.0.0.1:1/v1", model="judge",
                             api_key_env="LORASCOPE_TEST_JUDGE_KEY")
    with pytest.raises(JudgeError, match="LORASCOPE_TEST_JUDGE_KEY, which is not set"):
        judge_pairs(tmp_path / "w.duckdb", "e", "r", mtbench_pairs(1), endpoint, lambda _: None)


def mtbench_prompts(*ids: str) -> list[EvalPrompt]:
    rows = {row["id"]: row for row in mtbench_prompt_rows()}
    return [replace(eval_prompt(rows[i], "mtbench"), source="mtbench") for i in ids]


def answers(prompts: list[EvalPrompt], variant: str) -> dict[str, str]:
    return {p.prompt_id: f"The {variant} answer to {p.prompt_id}: 42." for p in prompts}


def test_math_question_is_judged_with_pair_math_v1_and_its_reference_through_mlx_lm_server(
    judge_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    prompts = mtbench_prompts("mtbench-81", "mtbench-111")  # writing, math
    references = mtbench_judge_references()
    pairs = make_pairs(prompts, answers(prompts, "base"), answers(prompts, "tuned"),
                       REFERENCE_CATEGORIES, references)
    endpoint = JudgeEndpoint(url=judge_url, model="default_model", max_tokens=8)
    assert judge_pairs(path, "e", "r", pairs, endpoint, lambda _: None) == 2

    rows = warehouse.query(path, "select prompt_id, judge_order, judge_prompt_version, "
                                 "user_prompt from judgments order by all")[1]
    sent = {(p.prompt_id, order): pair_messages(p, order)[-1]["content"]
            for p in pairs for order in ("base_first", "tuned_first")}
    assert all(user_prompt == sent[prompt_id, order]
               for prompt_id, order, _, user_prompt in rows)
    math = [r for r in rows if r[0] == "mtbench-111"]
    assert {r[2] for r in math} == {PAIR_MATH_V1.version}
    assert all(f"[The Start of Reference Answer]\n{references['mtbench-111']}\n" in r[3]
               for r in math)
    writing = [r for r in rows if r[0] == "mtbench-81"]
    assert {r[2] for r in writing} == {JUDGE_PROMPT_VERSION}
    assert not any("Reference Answer" in r[3] for r in writing)


def judge_context(home: Path, model_path: Path, judges: list[dict]) -> RunContext:
    config = parse_config({"eval": {"prompts": ["mtbench"], "judge": judges}})
    return RunContext("run", config, home, model_path, data_hash="", code_version="test")


def test_two_judges_judge_the_same_answers_side_by_side_and_each_resumes(
    judge_url: str, tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    # Two judge models on one server: mlx_lm.server answers to its --model path as well.
    judges = [{"url": judge_url, "model": "default_model", "max_tokens": 8},
              {"url": judge_url, "model": str(tiny_mistral_dir), "max_tokens": 8}]
    context = judge_context(tmp_path, tiny_mistral_dir, judges)
    prompts = mtbench_prompts("mtbench-81", "mtbench-111")
    warehouse.write_rows(context.warehouse, "generations", [
        {"evaluation_id": context.evaluation_id, "run_id": "run", "variant": variant,
         "prompt_id": prompt_id, "output_text": text}
        for variant in ("base", "tuned") for prompt_id, text in answers(prompts, variant).items()
    ])
    first = JudgeEndpoint(url=judge_url, model="default_model", max_tokens=8)
    pairs = make_pairs(prompts, answers(prompts, "base"), answers(prompts, "tuned"),
                       REFERENCE_CATEGORIES, mtbench_judge_references())
    # the first judge done before an interruption; the second not started
    assert judge_pairs(context.warehouse, context.evaluation_id, "run", pairs, first,
                       lambda _: None) == 2
    before = stored(context.warehouse)

    messages: list[str] = []
    assert judge_run(context, prompts, messages.append) == 2  # the second judge's two only
    assert messages[0] == f"judge default_model: all 2 prompts already judged for " \
                          f"{context.evaluation_id}"
    rows = stored(context.warehouse)
    assert set(before) <= set(rows)
    assert sorted({(r[3], r[5]) for r in rows}) == sorted(
        (model, version) for model in ("default_model", str(tiny_mistral_dir))
        for version in (JUDGE_PROMPT_VERSION, PAIR_MATH_V1.version))
    assert len(rows) == 8
    win_rates = view_rows(context.warehouse, context.evaluation_id)
    assert sorted(r["judge_model"] for r in win_rates) == sorted(
        ["default_model", str(tiny_mistral_dir)])
    (agreement,) = view_rows(context.warehouse, context.evaluation_id, "judge_agreement")
    assert (agreement["judge_a"], agreement["judge_b"], agreement["both_judged"]) == (
        *sorted(["default_model", str(tiny_mistral_dir)]), 2)
    assert judge_run(context, prompts, lambda _: None) == 0
