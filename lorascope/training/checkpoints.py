"""The checkpoint store: checkpoints/step-NNNNNNN folders holding adapter weights, optimizer
state and state.json, written to a temporary name, synced to disk and renamed, with a checksum
marker written last; a broken newest checkpoint falls back to the one before.

Weights that are not finite are never saved (a NaN checkpoint would be resumed from), and
pruning keeps the newest *valid* checkpoints, so a run always keeps one to resume from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lorascope.errors import LorascopeError
from lorascope.files import fsync_path

CHECKPOINT_FILES = ("adapters.safetensors", "optimizer.safetensors", "state.json")
COMPLETE_MARKER = "COMPLETE"
_CHUNK = 1 << 20


class NonFiniteCheckpoint(LorascopeError, ValueError):
    """Weights or optimizer state hold NaN or infinity: saving them would make a resume
    continue from garbage. Deterministic, so never retried."""

    exit_code = 6


def rng_seed_at(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def non_finite_arrays(arrays: dict[str, Any]) -> list[str]:
    """Names of the floating-point arrays in `arrays` holding a NaN or an infinity."""
    import mlx.core as mx

    floats = {name: a for name, a in arrays.items()
              if isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating)}
    finite = {name: mx.all(mx.isfinite(a)) for name, a in floats.items()}
    mx.eval(list(finite.values()))
    return [name for name, ok in finite.items() if not ok.item()]


def save_checkpoint(
    checkpoints: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any], keep: int
) -> Path:
    """Write checkpoints/step-NNNNNNN atomically (temp folder, fsync, rename, marker last),
    then prune to the newest `keep` valid checkpoints. NonFiniteCheckpoint, writing nothing, if
    the adapters or the optimizer state hold NaN or infinity."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    adapters = dict(tree_flatten(model.trainable_parameters()))
    optimizer_state = dict(tree_flatten(optimizer.state))
    bad = ([f"adapters: {n}" for n in non_finite_arrays(adapters)]
           + [f"optimizer state: {n}" for n in non_finite_arrays(optimizer_state)])
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteCheckpoint(
            f"refusing to save the checkpoint of step {step}: NaN or infinity in {shown}"
        )
    final = checkpoints / f"step-{step:07d}"
    partial_dir = checkpoints / f".step-{step:07d}.partial"
    shutil.rmtree(partial_dir, ignore_errors=True)
    partial_dir.mkdir(parents=True)
    mx.save_safetensors(str(partial_dir / "adapters.safetensors"), adapters)
    mx.save_safetensors(str(partial_dir / "optimizer.safetensors"), optimizer_state)
    (partial_dir / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    checksums = {name: _sha256(partial_dir / name) for name in CHECKPOINT_FILES}
    (partial_dir / COMPLETE_MARKER).write_text(json.dumps(checksums, indent=2))
    for name in (*CHECKPOINT_FILES, COMPLETE_MARKER):
        fsync_path(partial_dir / name)
    fsync_path(partial_dir)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial_dir, final)
    fsync_path(checkpoints)
    prune_checkpoints(checkpoints, keep)
    return final


def prune_checkpoints(checkpoints: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` valid checkpoints; returns what was deleted.

    Invalid (incomplete, corrupt) checkpoints older than a kept valid one go too; nothing
    newer than the newest valid one is touched, so broken newer checkpoints never cost a run
    its last valid one. Leftover partial folders of interrupted saves go as well."""
    kept: list[Path] = []
    deleted: list[Path] = []
    for folder in sorted(checkpoints.glob("step-*"), reverse=True):
        if len(kept) < keep and checkpoint_is_valid(folder):
            kept.append(folder)
        elif kept:
            deleted.append(folder)
    deleted += list(checkpoints.glob(".step-*.partial"))
    for folder in deleted:
        shutil.rmtree(folder, ignore_errors=True)
    if deleted:
        fsync_path(checkpoints)
    return deleted


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


