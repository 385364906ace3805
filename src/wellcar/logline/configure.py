"""Setting up a process's logging: level, line format, and where lines go."""

from __future__ import annotations

import logging
from typing import Literal

from wellcar.logline.formatters import JsonFormatter, LogfmtFormatter
from wellcar.logline.journal import JournalHandler, journal_sender, stderr_is_journal

LogFormat = Literal["logfmt", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("logfmt", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def log_format(name: str) -> LogFormat:
    for known in LOG_FORMATS:
        if name == known:
            return known
    raise ValueError(f"unknown log format {name!r}: use {' or '.join(LOG_FORMATS)}")


def formatter(fmt: LogFormat, with_time: bool = True) -> logging.Formatter:
    return JsonFormatter(with_time) if fmt == "json" else LogfmtFormatter(with_time)


def configure_logging(
    level: str = "info", fmt: str = "logfmt", identifier: str | None = None
) -> logging.Handler:
    """One handler on the root logger: the journal when ``identifier`` is given and systemd
    connected stderr to it (and python3-systemd is there), else stderr."""
    chosen = log_format(fmt)
    send = journal_sender() if identifier and stderr_is_journal() else None
    handler: logging.Handler
    if send is not None and identifier:
        handler = JournalHandler(identifier, send)
        handler.setFormatter(formatter(chosen, with_time=False))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(chosen))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler
