"""Where lorascope keeps its state: one folder, `$LORASCOPE_HOME` (default `./.lorascope`)."""

from __future__ import annotations

import os
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
