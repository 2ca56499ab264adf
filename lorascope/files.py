"""Durable file writes, shared by the checkpoint store and the warehouse's staging."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents to disk (a folder: its entries, e.g. a rename
    into it), so a crash right after leaves either the old state or the new one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
