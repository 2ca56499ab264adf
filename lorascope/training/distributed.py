"""One run trained by several processes with mlx.distributed, started by mlx.launch.

The supervisor (`training.supervisor`) starts `python -m lorascope.training.distributed
launch ...` instead of its usual child when train.ranks > 1. That runs mlx.launch (ring
backend), which starts `python -m lorascope.training.distributed rank` once per rank and
broadcasts the supervisor's stdin (the pickled run context) to all of them. Rank 0 is the
supervisor's usual child (`supervisor.main`: heartbeat, metrics, result on stdout, which
mlx.launch passes through); the other ranks train silently, their log on stderr.

mlx.launch never closes the ranks' stdin when its own closes, so the ranks would not notice a
dead supervisor; the `launch` step stops mlx.launch then, which closes the ranks' stdin (their
signal to stop, as for the single-process child).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import threading

# mlx.launch's report of a rank that ended; it stops the others with SIGTERM (code -15), so
# only another signal says that a rank was killed.
RANK_DIED = re.compile(r"Node with rank \d+ exited with code -(?!15\b)(\d+)")


def mlx_launch() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mlx.launch")
    found = beside if os.path.exists(beside) else shutil.which("mlx.launch")
    if found is None:
        raise FileNotFoundError(
            f"mlx.launch is not installed beside {sys.executable} nor on PATH: train.ranks > 1 "
            "needs mlx's launcher (pip install mlx)"
        )
    return found


def launch(arguments: list[str]) -> int:
    """Run mlx.launch with `arguments`, feeding it this process's stdin; stop it when that
    closes (the supervisor finished or died). A rank killed by a signal kills this process
    with the same signal, so that the supervisor sees the death it sees of a single child
    (mlx.launch itself only logs it and exits 0)."""
    launcher = subprocess.Popen([mlx_launch(), *arguments], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    assert launcher.stdin is not None and launcher.stderr is not None

    def forward() -> None:
        while data := os.read(0, 1 << 16):
            launcher.stdin.write(data)
            launcher.stdin.flush()
        launcher.terminate()

    threading.Thread(target=forward, daemon=True).start()
    death = None
    for line in launcher.stderr:
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        died = RANK_DIED.search(line.decode(errors="replace"))
        death = death or (int(died[1]) if died else None)
    code = launcher.wait()
    if death is not None:
        os.kill(os.getpid(), death)
    return code


def follow(rank: int) -> int:
    """A rank other than 0: the same training, reporting nothing (rank 0 does)."""
    from lorascope.training.steps import train_run
    from lorascope.training.supervisor import _exit_when_supervisor_dies

    os.dup2(2, 1)  # mlx-lm's prints join the log on stderr
    context, _ = pickle.load(sys.stdin.buffer)  # fault hooks run on rank 0 only
    threading.Thread(target=_exit_when_supervisor_dies, daemon=True).start()
    train_run(context, on_metrics=lambda rows: None,
              log=lambda line: print(f"rank {rank}: {line}", file=sys.stderr, flush=True))
    return 0


def rank_main() -> int:
    import mlx.core as mx

    rank = mx.distributed.init().rank()
    if rank == 0:
        from lorascope.training.supervisor import main

        return main()
    return follow(rank)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    sys.exit(launch(rest) if command == "launch" else rank_main())
