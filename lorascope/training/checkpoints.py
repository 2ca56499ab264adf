"""The checkpoint store: checkpoints/step-NNNNNNN folders holding adapter weights, optimizer
state and state.json, written to a temporary name and renamed, with a checksum marker written
last; a broken newest checkpoint falls back to the one before."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FILES = ("adapters.safetensors", "optimizer.safetensors", "state.json")
COMPLETE_MARKER = "COMPLETE"


def rng_seed_at(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(
    checkpoints: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any], keep: int
) -> Path:
    """Write checkpoints/step-NNNNNNN atomically (temp folder + rename, marker last)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    final = checkpoints / f"step-{step:07d}"
    partial_dir = checkpoints / f".step-{step:07d}.partial"
    shutil.rmtree(partial_dir, ignore_errors=True)
    partial_dir.mkdir(parents=True)
    mx.save_safetensors(
        str(partial_dir / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters()))
    )
    mx.save_safetensors(
        str(partial_dir / "optimizer.safetensors"), dict(tree_flatten(optimizer.state))
    )
    (partial_dir / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    checksums = {name: _sha256(partial_dir / name) for name in CHECKPOINT_FILES}
    (partial_dir / COMPLETE_MARKER).write_text(json.dumps(checksums, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial_dir, final)
    for old in sorted(checkpoints.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_is_valid(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        checksums = json.loads(marker.read_text())
        return all(_sha256(folder / name) == digest for name, digest in checksums.items())
    except (OSError, ValueError):
        return False


def latest_valid_checkpoint(
    checkpoints: Path, warn: Callable[[str], None] = print
) -> Path | None:
    """Newest checkpoint whose files match their checksums; a broken newer one is skipped."""
    for folder in sorted(checkpoints.glob("step-*"), reverse=True):
        if checkpoint_is_valid(folder):
            return folder
        warn(f"checkpoint {folder} is incomplete or corrupt; falling back to an older one")
    return None


