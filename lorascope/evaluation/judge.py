"""An optional pairwise judge: does a judge model prefer the tuned answer or the base one?

The judge is any OpenAI-compatible chat-completions endpoint (mlx_lm.server, Ollama, vLLM, a
hosted API), called through the `openai` client at temperature 0, with MT-Bench's pairwise
prompts (FastChat, llm_judge/data/judge_prompts.jsonl), verbatim: `pair-v2` shows the question,
assistant A's answer and assistant B's; `pair-math-v1`, which MT-Bench uses for its math,
reasoning and coding questions (FastChat's NEED_REF_CATS), shows a reference answer as well
and asks the judge to check both answers against it. Either ends in a verdict "[[A]]", "[[B]]"
or "[[C]]" for a tie, read as FastChat reads it (the first of A, B, C the reply contains).

Position bias: every prompt is judged twice, base as A (`base_first`) and tuned as A
(`tuned_first`). The two verdicts combine as MT-Bench's show_result combines them: the winner
both named, else a tie (orders that disagree are a tie); a prompt where either reply named no
verdict is `unparsed` and left out of the win rate, as MT-Bench drops its "error" games.

Verdicts land in the warehouse table `judgments` per prompt (both orders in one write) as they
come, keyed by the judge's model and the version of the prompt it was given (`<id>:<hash of
the prompt text>`), with its URL, the user prompt it saw and its whole reply. Prompts the
evaluation already holds verdicts for, from the same judge model and prompt version, are
skipped, so an interrupted judging resumes; an endpoint that cannot be reached or keeps
failing stops it with one `JudgeError`, keeping what was written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from lorascope import warehouse
from lorascope.errors import LorascopeError
from lorascope.evaluation.prompts import EvalPrompt

if TYPE_CHECKING:
    import openai

# MT-Bench's pair-v2 judge prompt, verbatim (a test compares it with the package's file).
SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. You should choose the assistant that "
    "follows the user's instructions and answers the user's question better. Your evaluation "
    "should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, "
    "and level of detail of their responses. Begin your evaluation by comparing the two "
    "responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow "
    "the length of the responses to influence your evaluation. Do not favor certain names of "
    "the assistants. Be as objective as possible. After providing your explanation, output your "
    'final verdict by strictly following this format: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
PROMPT_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
# MT-Bench's pair-math-v1, verbatim: the reference-guided prompt of its math, reasoning and
# coding questions.
MATH_SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. Your evaluation should consider "
    "correctness and helpfulness. You will be given a reference answer, assistant A's answer, "
    "and assistant B's answer. Your job is to evaluate which assistant's answer is better. "
    "Begin your evaluation by comparing both assistants' answers with the reference answer. "
    "Identify and correct any mistakes. Avoid any position biases and ensure that the order in "
    "which the responses were presented does not influence your decision. Do not allow the "
    "length of the responses to influence your evaluation. Do not favor certain names of the "
    "assistants. Be as objective as possible. After providing your explanation, output your "
    'final verdict by strictly following this format: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
MATH_PROMPT_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt: its id (MT-Bench's name, prefixed) and text, versioned by the text."""

    prompt_id: str
    system: str
    template: str

    @property
    def version(self) -> str:
        """`<id>:<hash of the system prompt and template>`, stored with every verdict."""
        text = json.dumps([self.system, self.template]).encode()
        return f"{self.prompt_id}:{hashlib.sha256(text).hexdigest()[:12]}"


PAIR_V2 = JudgePrompt("mtbench-pair-v2", SYSTEM_PROMPT, PROMPT_TEMPLATE)
PAIR_MATH_V1 = JudgePrompt("mtbench-pair-math-v1", MATH_SYSTEM_PROMPT, MATH_PROMPT_TEMPLATE)
JUDGE_PROMPT_ID = PAIR_V2.prompt_id
JUDGE_PROMPT_VERSION = PAIR_V2.version
# FastChat's NEED_REF_CATS: MT-Bench judges these categories with pair-math-v1 and a reference.
REFERENCE_CATEGORIES = ("math", "reasoning", "coding", "arena-hard-200")

# Who is assistant A and who is B in each order.
ORDERS = {"base_first": ("base", "tuned"), "tuned_first": ("tuned", "base")}
Z_95 = 1.96
# Sent as the API key to servers that need none: the openai client refuses an empty one.
NO_API_KEY = "not-needed"


class JudgeError(LorascopeError):
    """The judge endpoint could not be reached or kept failing; verdicts written are kept."""


@dataclass(frozen=True)
class JudgeEndpoint:
    """Where the judge runs: an OpenAI-compatible base URL (ending in /v1) and a model name."""

    url: str
    model: str
    api_key_env: str | None = None  # the name of the variable holding the key; None: no key
    max_tokens: int = 1024
    timeout_seconds: float = 120.0
    max_retries: int = 2  # the openai client's own retries, with backoff, of transient errors


@dataclass(frozen=True)
class JudgePair:
    prompt_id: str
    question: str
    base_answer: str
    tuned_answer: str
    reference: str | None = None  # given: judged against it with pair-math-v1

    @property
    def judge_prompt(self) -> JudgePrompt:
        """The prompt judge_messages gives the judge for this pair."""
        return PAIR_MATH_V1 if self.reference else PAIR_V2


@dataclass(frozen=True)
class WinRate:
    prompts: int  # judged in both orders with a verdict in each
    tuned_wins: int
    base_wins: int
    ties: int
    unparsed: int
    win_rate: float | None  # (tuned_wins + ties / 2) / prompts
    ci_low: float | None
    ci_high: float | None


def judge_messages(
    question: str, answer_a: str, answer_b: str, reference: str | None = None
) -> list[dict[str, str]]:
    """The chat messages that ask the judge to compare answer A with answer B: pair-v2, or
    pair-math-v1 with the reference answer when there is one."""
    prompt = PAIR_MATH_V1 if reference else PAIR_V2
    user = prompt.template.format(question=question, ref_answer_1=reference, answer_a=answer_a,
                                  answer_b=answer_b)  # pair-v2 has no {ref_answer_1}
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> str | None:
    """"A", "B" or "C" (tie), as FastChat's run_judge_pair reads a reply: "[[A]]" if the reply
    contains it anywhere, else "[[B]]", else "[[C]]"; None (FastChat's "error") without any."""
    return next((mark for mark in "ABC" if f"[[{mark}]]" in reply), None)


def order_verdict(order: str, mark: str | None) -> str:
    """The verdict of one order in our terms: 'base', 'tuned', 'tie' or 'unparsed'."""
    first, second = ORDERS[order]
    return {"A": first, "B": second, "C": "tie"}.get(mark, "unparsed")


def combine_orders(base_first: str, tuned_first: str) -> str:
    """A prompt's outcome from its two verdicts, as MT-Bench scores a game: the winner both
    named, 'tie' when they disagree or both say tie, 'unparsed' when either named none."""
    if "unparsed" in (base_first, tuned_first):
        return "unparsed"
    return base_first if base_first == tuned_first else "tie"


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for successes / n. Written out because scipy's
    (`binomtest(k, n).proportion_ci(method="wilson")`) takes whole successes only, and a tie
    counts half; on whole ones the two agree (a test checks it). With ties in place of a
    proportion it is slightly conservative: a tie varies less than a win or a loss."""
    p = successes / n
    z2_n = z * z / n
    center = (p + z2_n / 2) / (1 + z2_n)
    margin = math.sqrt(z2_n * p * (1 - p) + z2_n * z2_n / 4) / (1 + z2_n)
    return center - margin, center + margin


def win_rate(outcomes: Iterable[str]) -> WinRate:
    """The tuned model's win rate over prompt outcomes (combine_orders), ties counting half,
    with its 95 % Wilson interval; the `judge_win_rate` view computes the same."""
    outcomes = list(outcomes)
    tuned, base, ties = (outcomes.count(o) for o in ("tuned", "base", "tie"))
    n = tuned + base + ties
    if not n:
        return WinRate(0, 0, 0, 0, len(outcomes), None, None, None)
    low, high = wilson_interval(tuned + ties / 2, n)
    return WinRate(n, tuned, base, ties, len(outcomes) - n, (tuned + ties / 2) / n, low, high)


def pair_messages(pair: JudgePair, order: str) -> list[dict[str, str]]:
    """The judge's messages for one order of a pair: base as A (base_first) or tuned as A."""
    answers = {"base": pair.base_answer, "tuned": pair.tuned_answer}
    first, second = ORDERS[order]
    return judge_messages(pair.question, answers[first], answers[second], pair.reference)


def in_reference_category(prompt: EvalPrompt, reference_categories: Iterable[str]) -> bool:
    """Whether the prompt's category, without its set's prefix (mtbench:math is math), is one
    the judge judges against a reference."""
    return prompt.category.rsplit(":", 1)[-1] in set(reference_categories)


def judge_reference(
    prompt: EvalPrompt, reference_categories: Iterable[str], references: dict[str, str]
) -> str | None:
    """The reference answer the judge gets for `prompt`: in a reference category, the one
    `references` gives by prompt id (MT-Bench's judge references), else the prompt's own; None
    outside those categories, and when there is none (then judged with pair-v2)."""
    if not in_reference_category(prompt, reference_categories):
        return None
    return references.get(prompt.prompt_id) or prompt.reference or None


def make_pairs(
    prompts: Iterable[EvalPrompt], base_outputs: dict[str, str], tuned_outputs: dict[str, str],
    reference_categories: Iterable[str] = (), references: dict[str, str] | None = None,
) -> list[JudgePair]:
    """A pair per prompt that has both a base and a tuned answer (outputs by prompt id); the
    question is the prompt's last user turn, as MT-Bench's prompts show one question, and the
    reference is judge_reference's."""
    categories = tuple(reference_categories)
    return [
        JudgePair(p.prompt_id, p.user_text, base_outputs[p.prompt_id], tuned_outputs[p.prompt_id],
                  judge_reference(p, categories, references or {}))
        for p in prompts
        if p.prompt_id in base_outputs and p.prompt_id in tuned_outputs
    ]


def judge_pairs(
    warehouse_path: Path,
    evaluation_id: str,
    run_id: str,
    pairs: list[JudgePair],
    endpoint: JudgeEndpoint,
    log: Callable[[str], None] = print,
) -> int:
    """Judge every pair not yet judged for the evaluation by this judge model with the prompt
    version it gets now, in both orders, landing each prompt's two verdicts in `judgments` as
    they come. Returns how many prompts were judged now. Raises JudgeError when the endpoint
    cannot be reached or fails after its retries; verdicts already written stay, and a second
    call resumes with the prompts still missing."""
    with warehouse.connect(warehouse_path):
        pass  # creates the warehouse, or brings its schema up to date, before it is read
    done = judged_prompts(warehouse_path, evaluation_id, endpoint.model)
    todo = [pair for pair in pairs if (pair.prompt_id, pair.judge_prompt.version) not in done]
    if not todo:
        log(f"judge {endpoint.model}: all {len(pairs)} prompts already judged for "
            f"{evaluation_id}")
        return 0
    with_reference = sum(1 for pair in todo if pair.reference)
    log(f"judge {endpoint.model} at {endpoint.url}: {len(todo)} prompts to judge in both "
        f"orders ({len(pairs) - len(todo)} already judged; {with_reference} against a "
        f"reference answer with {PAIR_MATH_V1.prompt_id}, the rest with {PAIR_V2.prompt_id})")
    client = judge_client(endpoint)
    for number, pair in enumerate(todo, start=1):
        messages = {order: pair_messages(pair, order) for order in ORDERS}
        try:
            replies = {order: ask_judge(client, endpoint, messages[order]) for order in ORDERS}
        except JudgeError as error:
            judged = len(pairs) - len(todo) + number - 1
            raise JudgeError(f"{error} {judged} of {len(pairs)} prompts are judged and kept; "
                             "running again resumes with the rest.") from error
        created_at = datetime.now(timezone.utc).replace(tzinfo=None)
        verdicts = {order: order_verdict(order, parse_verdict(reply))
                    for order, reply in replies.items()}
        warehouse.write_rows(warehouse_path, "judgments", [
            {"evaluation_id": evaluation_id, "run_id": run_id, "prompt_id": pair.prompt_id,
             "judge_order": order, "verdict": verdicts[order], "judge_model": endpoint.model,
             "judge_url": endpoint.url, "judge_prompt_version": pair.judge_prompt.version,
             "user_prompt": messages[order][-1]["content"], "raw_reply": reply,
             "created_at": created_at}
            for order, reply in replies.items()
        ])
        log(f"judge {endpoint.model} {number}/{len(todo)} {pair.prompt_id}: base_first "
            f"{verdicts['base_first']}, tuned_first {verdicts['tuned_first']} -> "
            f"{combine_orders(verdicts['base_first'], verdicts['tuned_first'])}")
    return len(todo)


def judged_prompts(
    warehouse_path: Path, evaluation_id: str, judge_model: str
) -> set[tuple[str, str]]:
    """(prompt id, prompt version) of the evaluation's prompts judged in both orders by this
    judge model."""
    rows = warehouse.select_rows(warehouse_path, "judgments",
                                 ["prompt_id", "judge_prompt_version"],
                                 evaluation_id=evaluation_id, judge_model=judge_model)
    orders = Counter((row["prompt_id"], row["judge_prompt_version"]) for row in rows)
    return {key for key, count in orders.items() if count == len(ORDERS)}


def judge_client(endpoint: JudgeEndpoint) -> openai.OpenAI:
    """An OpenAI client for the endpoint, its key read from the variable `api_key_env` names."""
    import openai  # here, not at the top: it takes a while to import

    api_key = NO_API_KEY
    if endpoint.api_key_env:
        api_key = os.environ.get(endpoint.api_key_env, "")
        if not api_key:
            raise JudgeError(
                f"The judge at {endpoint.url} (model {endpoint.model!r}) needs an API key in the "
                f"environment variable {endpoint.api_key_env}, which is not set: export it, or "
                "set eval.judge.api_key_env to null for a local server that needs no key."
            )
    return openai.OpenAI(base_url=endpoint.url, api_key=api_key,
                         timeout=endpoint.timeout_seconds, max_retries=endpoint.max_retries)


def ask_judge(
    client: openai.OpenAI, endpoint: JudgeEndpoint, messages: list[dict[str, str]]
) -> str:
    """The judge's reply to `messages` ('' if it sent no text). The openai client retries
    connection errors, timeouts, 408, 409, 429 and 5xx answers itself (endpoint.max_retries
    times, with backoff); what still fails becomes a JudgeError that says what to check."""
    import openai

    where = f"The judge at {endpoint.url} (model {endpoint.model!r})"
    try:
        response = client.chat.completions.create(
            model=endpoint.model, messages=messages, temperature=0,
            max_tokens=endpoint.max_tokens,
        )
    except openai.APIConnectionError as error:
        raise JudgeError(
            f"{where} could not be reached in {endpoint.max_retries + 1} tries ({error} "
            f"{error.__cause__!r}): check that the server is running and that "
            "eval.judge.url is its OpenAI-compatible base URL, ending in /v1 (mlx_lm.server: "
            "http://127.0.0.1:8080/v1, Ollama: http://127.0.0.1:11434/v1)."
        ) from error
    except openai.APIStatusError as error:
        key_hint = (f"check the API key in ${endpoint.api_key_env}" if endpoint.api_key_env else
                    "set eval.judge.api_key_env to the variable that holds its API key")
        hint = {
            401: key_hint,
            403: key_hint,
            404: "check that eval.judge.model names a model the server serves and that "
                 "eval.judge.url ends in /v1",
        }.get(error.status_code, "check the server's log")
        body = f" {_one_line(json.dumps(error.body))}" if error.body else ""
        raise JudgeError(f"{where} answered HTTP {error.status_code}{body}: {hint}.") from error
    except openai.OpenAIError as error:
        raise JudgeError(f"{where} failed: {_one_line(str(error))}.") from error
    if not response.choices:
        return ""
    return response.choices[0].message.content or ""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
