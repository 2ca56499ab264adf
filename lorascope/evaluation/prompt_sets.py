"""The prompts an evaluation generates from: every set eval.prompts names, resolved to
prompts (lorascope.evaluation.prompts), each tagged with its set: the run's test split, the
built-in IFEval, IFBench and MT-Bench sets, the behaviour sets
(lorascope.evaluation.behaviour), a built-in dataset's eval prompts or a JSONL file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from lorascope.data.records import Record
from lorascope.evaluation.prompts import (
    TEST_SPLIT,
    EvalPrompt,
    eval_prompt,
    read_eval_prompts,
    test_split_prompts,
)


def builtin_prompt_set(name: str) -> list[EvalPrompt]:
    """A built-in prompt set by name (config.PROMPT_SETS)."""
    if name == "ifeval":
        from lorascope.evaluation.ifeval import BUILTIN_PROMPTS, builtin_prompt_rows

        return [eval_prompt(row, str(BUILTIN_PROMPTS)) for row in builtin_prompt_rows()]
    if name == "mtbench":
        from lorascope.evaluation.mtbench import mtbench_prompt_rows

        return [eval_prompt(row, "MT-Bench question.jsonl") for row in mtbench_prompt_rows()]
    from lorascope.evaluation.ifbench import BUILTIN_PROMPTS

    return read_eval_prompts(BUILTIN_PROMPTS)


def load_prompt_sets(
    sources: Sequence[str], test_records: Callable[[], Sequence[Record]],
    resolve_file: Callable[[str], Path], behaviour_limit: int | None = None, seed: int = 0,
) -> list[EvalPrompt]:
    """The prompts of every named set, each tagged with its set; ids must be unique.

    `test_records` gives the (sampled) test split, `resolve_file` the JSONL of a
    'builtin:NAME' or file entry; a behaviour set gives at most `behaviour_limit` prompts,
    drawn with `seed`."""
    from lorascope.config import BEHAVIOUR_SETS, PROMPT_SETS

    prompts: list[EvalPrompt] = []
    for source in sources:
        if source == TEST_SPLIT:
            found = test_split_prompts(test_records())
        elif source in PROMPT_SETS:
            found = builtin_prompt_set(source)
        elif source in BEHAVIOUR_SETS:
            from lorascope.evaluation.behaviour import BEHAVIOUR_SETS as SETS

            found = SETS[source].load(behaviour_limit, seed)
        else:
            found = read_eval_prompts(resolve_file(source))
        prompts += [replace(prompt, source=source) for prompt in found]
    ids = [p.prompt_id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        where = [p.source for p in prompts if p.prompt_id == duplicate]
        raise ValueError(f"eval.prompts: prompt id {duplicate!r} is used twice ({where})")
    return prompts
