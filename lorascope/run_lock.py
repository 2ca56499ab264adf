"""One writer per run: a lock on the run folder, held for as long as a `run`, `resume` or
`eval` process writes the run (its checkpoints, data folder and warehouse rows).

The lock is an advisory `flock` on `runs/<run_id>/.lock`: the kernel releases it when the
holding process ends, however it ends, so a crash or a kill never leaves a run locked. The
file records the holder (pid, host, command, start time) for the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from lorascope.errors import LorascopeError

LOCK_FILE = ".lock"
# Lock files this process holds: a flow started by a CLI that already holds the run's lock
# runs in the same process and must not lock it again.
_held: set[Path] = set()
_held_guard = threading.Lock()


class RunLocked(LorascopeError):
    """Another process is writing the run."""

    exit_code = 8


def describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return (f"pid {holder['pid']} on {holder['host']} ({holder['command']}, "
                f"since {holder['started_at']} UTC)")
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold the run folder's lock for the block; RunLocked at once if another process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / LOCK_FILE).resolve()
    with _held_guard:
        reentered = path in _held
    if reentered:
        yield
        return
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = describe_holder(handle.read())
        handle.close()
        raise RunLocked(
            f"run {folder.name} is being written by {holder}; wait for it to finish, or stop "
            "that process (a crashed holder releases the lock by itself)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    }))
    handle.flush()
    with _held_guard:
        _held.add(path)
    try:
        yield
    finally:
        with _held_guard:
            _held.discard(path)
        handle.close()  # closing the file releases the flock
