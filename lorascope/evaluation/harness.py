"""Capability tasks run by lm-evaluation-harness itself, on base or base+adapter.

`lorascope.evaluation.capability` re-implements lm-eval's log-likelihood multiple choice; this
module hands named tasks to `lm_eval.simple_evaluate` instead, through mlx-lm's lm-eval model
wrapper, so any lm-eval task (or a YAML task of the user's own) can be run. The offline
variants of standard tasks (`lorascope_arc_easy`, ...) are in `lorascope/evaluation/harness_tasks/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mlx_lm.evaluate import MLXLM

from lorascope.errors import LorascopeError
from lorascope.evaluation.harness_tasks import FOLDER, PREFIX, offline_task_names


class HarnessTaskError(LorascopeError, RuntimeError):
    """An lm-eval task that cannot be run here, with what to do about it."""


class LoadedMLXLM(MLXLM):
    """mlx-lm's lm-eval wrapper around a model already in memory.

    `MLXLM.__init__` only loads from a path, without adapters or quantization, so this sets
    the attributes its scoring and generation methods read instead of calling it. Prompts are
    plain text (no chat template): lm-eval's default, and what `capability` scores.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8) -> None:
        super(MLXLM, self).__init__()
        self._model, self.tokenizer = model, tokenizer
        self._batch_size = batch_size
        self._max_tokens = None  # generation: each task's own max_gen_toks
        self.use_chat_template = False
        self._sampler = None  # greedy


@dataclass(frozen=True)
class HarnessResult:
    rows: list[dict[str, Any]]  # one per task and metric
    samples: list[dict[str, Any]]  # one per task and document


def task_manager(tasks: list[str], include_path: str | None = None) -> Any:
    """lm-eval's TaskManager over the offline tasks and `include_path`. lm-eval's own ~15 000
    task configs are indexed too (some 15 s) only if a task is not found among those."""
    from lm_eval.tasks import TaskManager

    paths = [str(FOLDER), *([include_path] if include_path else [])]
    ours = TaskManager(include_path=paths, include_defaults=False)
    if all(name in ours.all_tasks for name in tasks):
        return ours
    return TaskManager(include_path=paths)


def run_tasks(
    model: Any, tokenizer: Any, tasks: list[str], limit: int | None = None,
    include_path: str | None = None, batch_size: int = 8, manager: Any = None,
) -> HarnessResult:
    """Run lm-eval tasks zero-shot on an mlx-lm model (base, or with adapters loaded); `limit`
    takes the first documents of each task."""
    import lm_eval

    manager = manager or task_manager(tasks, include_path)
    unknown = [name for name in tasks if name not in manager.all_tasks]
    if unknown:
        raise HarnessTaskError(
            f"eval.harness_tasks: lm-eval knows no task {', '.join(unknown)}. Offline tasks: "
            f"{', '.join(offline_task_names())}; `lm-eval ls tasks` lists lm-eval's own; "
            "eval.harness_include_path adds a folder of your own YAML tasks."
        )
    try:
        results = lm_eval.simple_evaluate(
            model=LoadedMLXLM(model, tokenizer, batch_size), tasks=tasks, limit=limit,
            task_manager=manager, log_samples=True,
        )
    except ConnectionError as error:  # datasets: "Couldn't reach '<path>' on the Hub (...)"
        raise HarnessTaskError(hub_message(tasks, manager, error)) from None
    return HarnessResult(result_rows(results), sample_rows(results))


def hub_message(tasks: list[str], manager: Any, error: Exception) -> str:
    """Which requested tasks need the Hub, and their offline variants if there are any."""
    hub = []
    for name in tasks:
        config = getattr(manager.task_index.get(name), "cfg", None) or {}
        path = config.get("dataset_path")
        if path and "custom_dataset" not in config and not Path(path).exists():
            hub.append(f"{name} (dataset {path})")
    offline = [f"{PREFIX}{name}" for name in tasks if f"{PREFIX}{name}" in offline_task_names()]
    return (
        f"eval.harness_tasks: cannot load {', '.join(hub) or ', '.join(tasks)} from the "
        f"Hugging Face Hub ({error}). "
        + (f"Use the offline variant {', '.join(offline)} instead, or run " if offline
           else "Run ")
        + "with network or with the dataset in the Hugging Face cache. Offline tasks: "
        + f"{', '.join(offline_task_names())}."
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None  # lm-eval writes "N/A"


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task (or group) and metric of simple_evaluate's results: `acc,none` and
    `acc_stderr,none` become metric `acc`; other filters keep their name (`acc,<filter>`)."""
    lm_eval_version = version("lm_eval")
    rows = []
    for task, values in results["results"].items():
        n = results.get("n-samples", {}).get(task, {}).get("effective")
        for key, value in values.items():
            name, _, filter_name = key.partition(",")
            if not filter_name or name.endswith("_stderr") or _number(value) is None:
                continue
            rows.append({
                "task": task,
                "metric": name if filter_name == "none" else key,
                "value": float(value),
                "stderr": _number(values.get(f"{name}_stderr,{filter_name}")),
                "n": n,
                "lm_eval_version": lm_eval_version,
            })
    return rows


def sample_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task and document: its target, lm-eval's filtered responses (per choice
    (log-likelihood, is greedy) for multiple choice, the text for generation) and its value
    of each metric."""
    rows = []
    for task, samples in results.get("samples", {}).items():
        metrics = [m["metric"] for m in results["configs"][task].get("metric_list") or []]
        for sample in samples:
            rows.append({
                "task": task, "doc_id": sample["doc_id"], "target": sample["target"],
                "responses": sample["filtered_resps"],
                **{m: sample[m] for m in metrics if isinstance(m, str) and m in sample},
            })
    return rows
