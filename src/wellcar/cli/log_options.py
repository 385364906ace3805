"""The log options `wellcar serve` and `wellcar agent run` share."""

from __future__ import annotations

from enum import StrEnum


class LogFormatChoice(StrEnum):
    """wellcar.logline.LOG_FORMATS as a choice Typer can show (a test keeps them equal)."""

    LOGFMT = "logfmt"
    JSON = "json"
