"""What makes a run reproducible and findable: its id, folder, code version, data hash."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

from lorascope import __version__
from lorascope.home import runs_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_id_for(name: str, config_hash: str) -> str:
    """Same config, same run: re-running a config resumes (or re-reports) its run."""
    return f"{name}-{config_hash[:10]}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_dir(run_id: str, home: Path | None = None) -> Path:
    return runs_dir(home) / run_id


def code_version() -> str:
    """Package version plus the git commit (and '+dirty') when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"
