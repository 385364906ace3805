"""Durations in update.conf: Go style (``1h30m``, ``90s``) or a plain number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = ["MAX_DURATION", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=366)

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str, *, bare_seconds: bool = True) -> timedelta:
    """Parse a Go-style duration (``1h30m``, ``90s``, ``1.5h``) or, when
    ``bare_seconds``, a plain number of seconds (``300``). Negative and
    absurdly long (> 1 year) durations are refused with ``ValueError``."""
    s = text.strip()
    if not s or len(s) > 64:
        raise ValueError(f"not a duration: {text!r}")
    if s == "0" or (bare_seconds and _BARE_SECONDS.fullmatch(s)):
        total = Decimal(s)
    else:
        total = Decimal(0)
        pos = 0
        while pos < len(s):
            m = _DURATION_PART.match(s, pos)
            if m is None:
                raise ValueError(f"not a duration: {text!r} (expected e.g. 300, 45s, 1h30m)")
            try:
                total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
            except InvalidOperation:
                raise ValueError(f"not a duration: {text!r}") from None
            pos = m.end()
    if total > Decimal(int(MAX_DURATION.total_seconds())):
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=float(total))


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` → ``"1h30m"`` (Go-like, for messages)."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    out += f"{seconds}s" if seconds or not out else ""
    return out
