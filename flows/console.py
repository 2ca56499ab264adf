"""How flow runs look in the terminal: Prefect's console log without the tracebacks of
user-facing errors, whose one-line message says all (the Prefect UI keeps the traceback)."""

from __future__ import annotations

import logging

import prefect.main  # noqa: F401 - sets up Prefect's logging, whose handlers we wrap
from prefect.logging.handlers import PrefectConsoleHandler

from lorascope.errors import is_user_error


class UserErrorFormatter(logging.Formatter):
    """Wraps a console formatter; formats user-facing errors without their traceback."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not is_user_error(error):
            return self.inner.format(record)
        # The record is shared with the API handler (the UI's logs): restore it afterwards.
        exc_info, exc_text = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = exc_info, exc_text


def hide_user_error_tracebacks() -> None:
    """Wrap the formatter of every Prefect console handler in UserErrorFormatter."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(
                    handler.formatter, UserErrorFormatter):
                handler.setFormatter(UserErrorFormatter(handler.formatter))
