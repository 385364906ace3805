"""The two line formats: logfmt (the default) and JSON, one object a line.

A line holds ``ts level logger msg``, then the record's fields (keys from
``wellcar.logline.fields``), then ``exc`` for a traceback. Untrusted values belong in
fields, not in ``msg``; both are escaped and clipped either way, so a message built by a
third-party library with ``%s`` cannot break the line either.
"""

from __future__ import annotations

import json
import logging
import math
import time

from wellcar.logline.encode import (
    MAX_MESSAGE_CHARS,
    MAX_TRACE_CHARS,
    MAX_VALUE_CHARS,
    clip,
    logfmt_value,
)
from wellcar.logline.fields import record_fields


def timestamp(record: logging.LogRecord) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.msecs):03d}Z"


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a caller's bad %-format must not lose the line
        return f"{record.msg!s} (unformattable arguments)"


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    if record.exc_text:
        return record.exc_text
    return None


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="…" key=value … exc="…"``."""

    def __init__(self, with_time: bool = True) -> None:
        super().__init__()
        self.with_time = with_time  # the journal keeps its own timestamp

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={timestamp(record)}"] if self.with_time else []
        parts.append(f"level={logfmt_value(record.levelname.lower())}")
        parts.append(f"logger={logfmt_value(record.name)}")
        parts.append(f"msg={logfmt_value(_message(record), MAX_MESSAGE_CHARS)}")
        parts.extend(f"{key}={logfmt_value(value)}" for key, value in record_fields(record))
        trace = _trace(self, record)
        if trace is not None:
            parts.append(f"exc={logfmt_value(trace, MAX_TRACE_CHARS)}")
        return " ".join(parts)


def json_value(value: object) -> object:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return clip(str(value), MAX_VALUE_CHARS)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, ASCII only (every control character is a ``\\u`` escape)."""

    def __init__(self, with_time: bool = True) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"ts": timestamp(record)} if self.with_time else {}
        line["level"] = record.levelname.lower()
        line["logger"] = record.name
        line["msg"] = clip(_message(record), MAX_MESSAGE_CHARS)
        for key, value in record_fields(record):
            line[key] = json_value(value)
        trace = _trace(self, record)
        if trace is not None:
            line["exc"] = clip(trace, MAX_TRACE_CHARS)
        return json.dumps(line, ensure_ascii=True, allow_nan=False)
