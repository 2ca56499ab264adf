"""Failures a person acts on. Each message says what went wrong, where (file, line, key,
step) and what to do; the CLI prints it as one line and exits with the class's code."""

from __future__ import annotations


class LorascopeError(Exception):
    """Base of lorascope's user-facing errors; `exit_code` is the CLI's exit status."""

    exit_code = 1


# A shell's statuses for a process Ctrl-C (128 + SIGINT) or SIGTERM (128 + 15) ended;
# lorascope exits with them after stopping cleanly.
STOPPED_BY_CTRL_C = 130
STOPPED_BY_SIGTERM = 143

EXIT_CODES = {
    0: "success",
    1: "any other failure (its one-line message says what; --debug shows the traceback)",
    2: "bad command line or config (unknown key, wrong type, missing file or run)",
    3: "regression gate tripped (eval.gate: fail)",
    4: "bad data: unreadable, or it failed validation (the report names file, line and rule)",
    5: "model not found or not loadable",
    6: "training stopped for a reason to fix (NaN loss, out of memory, resume mismatch)",
    7: "warehouse error (in use by another process, newer schema, bad query)",
    8: "run locked: another process is writing that run (the message names it)",
    STOPPED_BY_CTRL_C: "stopped by Ctrl-C: what finished is kept; `lorascope resume` continues a "
                       "run",
    STOPPED_BY_SIGTERM: "stopped by SIGTERM (`kill`): what finished is kept; `lorascope resume` "
                        "continues a run",
}

# Errors from the standard library whose message names the file or key at fault.
PLAIN_USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError)


def exit_code(error: BaseException) -> int:
    """The documented exit status for `error` (EXIT_CODES)."""
    import duckdb

    if isinstance(error, LorascopeError):
        return error.exit_code
    return 7 if isinstance(error, duckdb.Error) else 1


def is_user_error(error: BaseException) -> bool:
    """Errors whose message already says what went wrong and where: no traceback needed."""
    return isinstance(error, (LorascopeError, *PLAIN_USER_ERRORS)) or exit_code(error) != 1
