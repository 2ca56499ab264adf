"""The pairwise judge: MT-Bench's prompt and verdict rules, the win rate and its interval (in
Python and in the judge_win_rate view), MT-Bench's questions as eval prompts, and judging
through a real mlx_lm.server on tiny-mistral into a real DuckDB warehouse."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path

import pytest
from scipy.stats import binomtest

from lorascope import warehouse
from lorascope.evaluation.judge import (
    JUDGE_PROMPT_ID,
    JUDGE_PROMPT_VERSION,
    PROMPT_TEMPLATE,
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
from lorascope.evaluation.mtbench import llm_judge_data_dir, mtbench_prompt_rows
from lorascope.evaluation.prompts import eval_prompt


def test_judge_prompt_is_mtbench_pair_v2_verbatim() -> None:
    path = llm_judge_data_dir() / "judge_prompts.jsonl"
    prompts = {row["name"]: row for row in map(json.loads, path.read_text().splitlines())}
    assert prompts["pair-v2"]["system_prompt"] == SYSTEM_PROMPT
    assert prompts["pair-v2"]["prompt_template"] == PROMPT_TEMPLATE
    assert JUDGE_PROMPT_VERSION.startswith(f"{JUDGE_PROMPT_ID}:")
    assert len(JUDGE_PROMPT_VERSION.rsplit(":", 1)[1]) == 12


def test_judge_messages_show_question_and_both_answers_under_their_letters() -> None:
    system, user = judge_messages("Q?", "first answer", "second answer")
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert user["content"].startswith("[User Question]\nQ?\n\n")
    assert "[The Start of Assistant A's Answer]\nfirst answer\n" in user["content"]
    assert "[The Start of Assistant B's Answer]\nsecond answer\n" in user["content"]


def test_pair_messages_put_base_then_tuned_under_a_by_order() -> None:
    pair = JudgePair("p", "Q?", "base answer", "tuned answer")
    assert pair_messages(pair, "base_first") == judge_messages("Q?", "base answer", "tuned answer")
    assert pair_messages(pair, "tuned_first") == judge_messages("Q?", "tuned answer", "base answer")


def test_parse_verdict_takes_the_last_mark_and_none_without_one() -> None:
    assert parse_verdict("B is clearer. [[B]]") == "B"
    assert parse_verdict('Format: "[[A]]" if A is better... Both are equal. [[C]]') == "C"
    assert parse_verdict("A is better, verdict: [A]") is None
    assert parse_verdict("") is None


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
    evaluation_id: str, verdicts: list[tuple[str, str]], created_at: datetime | None = None
) -> list[dict]:
    return [
        {"evaluation_id": evaluation_id, "run_id": "run", "prompt_id": f"p{i}",
         "judge_order": order, "verdict": verdict, "judge_model": "judge",
         "judge_url": "http://127.0.0.1:1/v1", "judge_prompt_version": JUDGE_PROMPT_VERSION,
         "raw_reply": "", "created_at": created_at}
        for i, pair in enumerate(verdicts)
        for order, verdict in zip(("base_first", "tuned_first"), pair, strict=True)
    ]


def view_rows(path: Path, evaluation_id: str) -> list[dict]:
    columns, rows = warehouse.query(
        path, "select * from judge_win_rate where evaluation_id = ?", [evaluation_id])
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
    assert row["inconsistent"] == 2 and row["judge_prompt_version"] == JUDGE_PROMPT_VERSION
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
    assert len(messages) == 4 and messages[-1].startswith("judge 3/3 mtbench-83: base_first")

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
    assert "2 prompts to judge in both orders (2 already judged)" in messages[0]
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
