"""Run MLX on an optimized BLAS on Linux.

The mlx-cpu wheel links a bundled reference BLAS (~7 GFLOP/s for a float32 matmul on the
2-core box, against ~200 with OpenBLAS), so training would be ~12-25x slower than it needs
to be. The dynamic loader only honours LD_PRELOAD at process start, so the console script
re-executes itself once with the library preloaded. Imports nothing heavy: it runs first.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

# Checked in order; the first that exists wins. Debian/Ubuntu's libopenblas0-pthread first.
CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)
DISABLE_ENV = "LORASCOPE_NO_BLAS_PRELOAD"
_MARKER_ENV = "LORASCOPE_BLAS_REEXEC"


def find_optimized_blas() -> Path | None:
    """Path of an optimized BLAS with standard cblas symbols, or None."""
    for candidate in CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    found = ctypes.util.find_library("openblas")
    return Path(found) if found and Path(found).is_absolute() else None


def preloaded_blas() -> str | None:
    preload = os.environ.get("LD_PRELOAD", "")
    return next((p for p in preload.split(":") if "blas" in p.lower()), None)


def describe_blas() -> str:
    """One line for the log saying which BLAS MLX runs on."""
    if not sys.platform.startswith("linux"):
        return "BLAS: platform default (Accelerate/Metal on macOS)"
    loaded = preloaded_blas()
    if loaded:
        return f"BLAS: optimized, {loaded} (preloaded)"
    return (
        "BLAS: mlx-cpu's bundled reference BLAS (slow). Install OpenBLAS "
        "(apt-get install libopenblas0-pthread) for ~25x faster matmuls."
    )


def ensure_optimized_blas(argv: list[str] | None = None) -> None:
    """Re-exec this process once with an optimized BLAS preloaded, when one is available."""
    if not sys.platform.startswith("linux") or os.environ.get(DISABLE_ENV):
        return
    if preloaded_blas() or os.environ.get(_MARKER_ENV):
        return
    library = find_optimized_blas()
    if library is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(filter(None, [str(library), env.get("LD_PRELOAD")]))
    env[_MARKER_ENV] = "1"
    args = argv if argv is not None else sys.argv
    os.execve(sys.executable, [sys.executable, *args_for_reexec(args)], env)


def args_for_reexec(argv: list[str]) -> list[str]:
    """Turn sys.argv into arguments for `python ...` that re-run the same entry point."""
    script = argv[0]
    if script.endswith((".py", "__main__.py")) and not script.endswith("lorascope"):
        return argv
    return ["-m", "lorascope.cli", *argv[1:]]


if __name__ == "__main__":
    # `python -m lorascope.blas` prints the library to preload (for Makefiles and CI).
    library = find_optimized_blas()
    print(library or "")
