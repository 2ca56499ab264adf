"""Where lorascope keeps its state: one folder, `$LORASCOPE_HOME` (default `./.lorascope`),
and the layout of a run folder inside it. Every path of a run is named here."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


def lorascope_home() -> Path:
    return Path(os.environ.get("LORASCOPE_HOME", ".lorascope")).resolve()


def warehouse_path(home: Path | None = None) -> Path:
    return (home or lorascope_home()) / "warehouse.duckdb"


def runs_dir(home: Path | None = None) -> Path:
    return (home or lorascope_home()) / "runs"


def models_dir(home: Path | None = None) -> Path:
    """Cache of built-in models converted once from registry packages."""
    return (home or lorascope_home()) / "models"


def datasets_dir(home: Path | None = None) -> Path:
    """Cache of built-in datasets prepared once from registry packages."""
    return (home or lorascope_home()) / "datasets"


def data_package_dir(module: str, needed_for: str, install_hint: str) -> Path:
    """The folder of a registry package installed for its data files only (`--no-deps`).

    find_spec locates it without importing it: such packages' own imports need dependencies
    that are deliberately not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{needed_for} need the package {module} for its data files: {install_hint}",
            name=module)
    return Path(spec.submodule_search_locations[0])


def experiments_dir(home: Path | None = None) -> Path:
    return (home or lorascope_home()) / "experiments"


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder, `runs/<run_id>/`: self-describing (config, run facts,
    prepared data, checkpoints, adapters, validation and run reports)."""

    root: Path

    @classmethod
    def of(cls, run_id: str, home: Path | None = None) -> RunPaths:
        return cls(runs_dir(home) / run_id)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_info(self) -> Path:
        return self.root / "run.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation.md"

    @property
    def report(self) -> Path:
        """The report of the run's latest evaluation (each evaluation keeps its own too)."""
        return self.root / "report.md"

    def evaluation(self, evaluation_id: str) -> Path:
        """An evaluation's own files: its report.md and lm-evaluation-harness's per-document
        results (lm_eval/<variant>/<task>.jsonl)."""
        return self.root / "evaluations" / evaluation_id

    @property
    def mlx_lm_scratch_adapters(self) -> Path:
        """Where mlx-lm's trainer would save its own adapters (never triggered)."""
        return self.root / ".mlx_lm_adapters.safetensors"
