"""Training in a child process that the caller supervises.

An out-of-memory kill, a segfault or a SIGKILL ends only the child: the supervising process
(the Prefect task) sees the signal, raises `TrainingProcessDied` (which a retry resumes from
the newest valid checkpoint) and stays alive to record what happened. The child reports its
metric rows, log lines, result or error as JSON lines on its stdout; everything else it prints
(mlx-lm's progress, native warnings, a faulthandler dump) goes to stderr and is forwarded as
log lines. The child writes the run's heartbeat file while it trains, and stops by itself when
its supervisor dies (its stdin closes), so a killed flow never leaves training running.

    python -m lorascope.training.supervisor   (reads a pickled (RunContext, hook) on stdin)
"""

from __future__ import annotations

import base64
import faulthandler
import importlib
import json
import os
import pickle
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, Any

from lorascope.blas import DISABLE_ENV, find_optimized_blas, preloaded_blas
from lorascope.config import TrainConfig
from lorascope.errors import LorascopeError
from lorascope.runs import RunContext, heartbeat_path, utc_now
from lorascope.training.trainer import TrainResult, out_of_memory_advice

HEARTBEAT_SECONDS = 5.0
STDERR_LINES_KEPT = 20
# mlx-lm's rich console writes colours and carriage returns even to a pipe.
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class TrainingProcessDied(LorascopeError, RuntimeError):
    """The training process was killed by a signal (out of memory, kill, crash).

    Not deterministic like TrainingError: a retry resumes from the newest valid checkpoint."""

    exit_code = 6


# ---------------------------------------------------------------- the supervising side


def child_environment() -> dict[str, str]:
    """This process's environment, with an optimized BLAS preloaded when this process has
    none (a Prefect worker started without it): the loader honours LD_PRELOAD at start only."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if sys.platform.startswith("linux") and not preloaded_blas() and not env.get(DISABLE_ENV):
        library = find_optimized_blas()
        if library is not None:
            env["LD_PRELOAD"] = ":".join(filter(None, [str(library), env.get("LD_PRELOAD")]))
    return env


def child_command(train: TrainConfig) -> list[str]:
    """This module's child, or (train.ranks > 1) mlx.launch starting one per rank through
    `training.distributed`, which also says how the ranks share the work."""
    if train.ranks == 1:
        return [sys.executable, "-m", "lorascope.training.supervisor"]
    hosts = (["--hostfile", train.hostfile] if train.hostfile is not None
             else ["-n", str(train.ranks), "--starting-port", str(_free_port())])
    return [sys.executable, "-m", "lorascope.training.distributed", "launch",
            "--backend", "ring", *hosts, "--python", sys.executable,
            "--", "-m", "lorascope.training.distributed", "rank"]


def _free_port() -> int:
    # mlx.launch's ring listens on port, port + 1, ... of this machine: not its fixed default,
    # so that two runs (or test sessions) on one machine do not collide.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def train_supervised(
    context: RunContext, on_metrics: Callable[[list[dict[str, Any]]], None],
    log: Callable[[str], None] = print, after_report: str | None = None,
) -> TrainResult:
    """Train the run in a child process (`training.steps.train_run` there); returns its result.

    Metric rows and log lines arrive here, in the caller's thread, as the child reports them.
    A child error is raised again here as the same exception; a signal death raises
    TrainingProcessDied with the out-of-memory advice. `after_report` is "module:function",
    a callable of the step imported in the child (tests inject faults there)."""
    process = subprocess.Popen(
        child_command(context.config.train), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_environment(),
    )
    assert process.stdin is not None and process.stdout is not None
    messages: queue.Queue[tuple[str, Any]] = queue.Queue()
    readers = [threading.Thread(target=_read_lines, args=(stream, kind, messages), daemon=True)
               for stream, kind in ((process.stdout, "report"), (process.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    last_step: int | None = None
    stderr_tail: list[str] = []
    outcome: dict[str, Any] = {}
    try:
        process.stdin.write(pickle.dumps((context, after_report)))
        process.stdin.flush()  # stdin stays open: the child stops when it closes
        open_streams = len(readers)
        while open_streams:
            kind, item = messages.get()
            if item is None:
                open_streams -= 1
            elif kind == "stderr":
                stderr_tail = [*stderr_tail[1 - STDERR_LINES_KEPT:], item]
                log(item)
            elif "metrics" in item:
                last_step = max([last_step or 0, *(row["step"] for row in item["metrics"])])
                on_metrics(item["metrics"])
            elif "log" in item:
                log(item["log"])
            else:
                outcome = item
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
    if "result" in outcome:
        return pickle.loads(base64.b64decode(outcome["result"]))
    if "error" in outcome:
        raise _child_error(outcome)
    if code < 0:
        raise TrainingProcessDied(death_message(context, -code, last_step))
    raise RuntimeError(f"the training process of {context.run_id} exited with status {code} "
                       "without a result; its last output:\n" + "\n".join(stderr_tail))


def death_message(context: RunContext, signal_number: int, last_step: int | None) -> str:
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    return (f"the training process of run {context.run_id} was killed by {name} (the kernel's "
            "out-of-memory killer sends SIGKILL, a Metal or allocator abort SIGABRT); a retry "
            "resumes from its newest valid checkpoint. If it ran out of memory: "
            + out_of_memory_advice(context.config, last_step))


def _read_lines(stream: IO[bytes], kind: str, messages: queue.Queue[tuple[str, Any]]) -> None:
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\n")
        if kind == "stderr":
            line = TERMINAL_CODES.sub("", line).rsplit("\r", 1)[-1].rstrip()
            if line:
                messages.put((kind, line))
            continue
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        messages.put((kind, message) if isinstance(message, dict) else ("stderr", line))
    messages.put((kind, None))


def _child_error(outcome: dict[str, Any]) -> BaseException:
    """The child's exception again (so its type, exit code and message survive), its
    traceback as the cause; the text alone when its class or attributes do not unpickle.

    Rebuilt from class, args and attributes rather than unpickled whole: pickle calls the
    class with `args`, which fails for exceptions such as DataError(file, line, message)."""
    try:
        kind, args, attributes = pickle.loads(base64.b64decode(outcome["error"]))
        error = kind.__new__(kind)
        error.args = args
        error.__dict__.update(attributes)
    except Exception:  # e.g. a class the supervisor cannot import: keep the text
        error = RuntimeError(outcome["message"])
    error.__cause__ = RuntimeError("in the training process:\n" + outcome["traceback"])
    return error


# ---------------------------------------------------------------- the child


class Heartbeat:
    """runs/<run_id>/heartbeat.json, rewritten every HEARTBEAT_SECONDS while training runs:
    pid, host, last reported step and time, for `lorascope status` to say when it stopped."""

    def __init__(self, context: RunContext) -> None:
        self.path, self.step = heartbeat_path(context.paths.root), None
        self.stopped = threading.Event()

    def beat(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "step": self.step,
            "at": utc_now().strftime("%Y-%m-%d %H:%M:%S"),
        }))
        os.replace(partial, self.path)

    def run(self) -> None:
        self.beat()
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            self.beat()
        self.beat()  # the step it ended at


def _exit_when_supervisor_dies() -> None:
    while os.read(0, 4096):  # b"" at EOF: the supervisor closed stdin or died
        pass
    os._exit(1)  # checkpoints are written atomically: stopping anywhere is safe


def _import_hook(spec: str | None) -> Callable[[int], None] | None:
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main() -> int:
    report = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # everything else printed goes to stderr, forwarded as log lines
    faulthandler.enable()
    context, hook = pickle.load(sys.stdin.buffer)
    threading.Thread(target=_exit_when_supervisor_dies, daemon=True).start()
    heartbeat = Heartbeat(context)
    beating = threading.Thread(target=heartbeat.run, daemon=True)
    beating.start()

    def send(**message: Any) -> None:
        report.write(json.dumps(message, default=str) + "\n")

    def metrics(rows: list[dict[str, Any]]) -> None:
        heartbeat.step = max(row["step"] for row in rows)
        send(metrics=rows)

    from lorascope.training.steps import train_run

    try:
        result = train_run(context, on_metrics=metrics, log=lambda line: send(log=line),
                           after_report=_import_hook(hook))
    except BaseException as error:
        try:
            pickled = base64.b64encode(
                pickle.dumps((type(error), error.args, vars(error)))).decode()
        except Exception:  # attributes that do not pickle: the supervisor keeps the text
            pickled = ""
        send(error=pickled, message=f"{type(error).__name__}: {error}",
             traceback=traceback.format_exc())
        return 1
    finally:
        heartbeat.stopped.set()
        beating.join()
    send(result=base64.b64encode(pickle.dumps(result)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
