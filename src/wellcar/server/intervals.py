"""Policy durations written as PostgreSQL intervals ("15 minutes", "1 hours", "01:30:00")."""

from __future__ import annotations

import re
from datetime import timedelta

from wellcar.server.errors import InvalidInput

_UNITS = {
    "second": 1,
    "seconds": 1,
    "sec": 1,
    "secs": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "min": 60,
    "mins": 60,
    "m": 60,
    "hour": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
    "d": 86400,
    "week": 604800,
    "weeks": 604800,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_CLOCK = re.compile(r"^(\d{1,3}):([0-5]\d)(?::([0-5]\d))?$")
MAX_INTERVAL = timedelta(days=366)


def parse_interval(text: str) -> timedelta:
    """Parse a policy interval; raise InvalidInput naming the value when it is not one."""
    value = text.strip().lower()
    if not value:
        raise InvalidInput("empty interval: write it like '15 minutes' or '1 hours'")
    clock = _CLOCK.match(value)
    if clock:
        seconds = int(clock.group(1)) * 3600 + int(clock.group(2)) * 60 + int(clock.group(3) or 0)
    else:
        pos = 0
        seconds_f = 0.0
        for m in _PART.finditer(value):
            if value[pos : m.start()].strip():
                break
            unit = _UNITS.get(m.group(2))
            if unit is None:
                raise InvalidInput(f"unknown unit {m.group(2)!r} in interval {text!r}")
            seconds_f += float(m.group(1)) * unit
            pos = m.end()
        if pos == 0 or value[pos:].strip():
            raise InvalidInput(
                f"invalid interval {text!r}: write it like '15 minutes' or '1 hours'"
            )
        seconds = int(seconds_f)
    if seconds > MAX_INTERVAL.total_seconds():
        raise InvalidInput(f"interval {text!r} is longer than a year")
    result = timedelta(seconds=seconds)
    if result <= timedelta(0):
        raise InvalidInput(f"interval {text!r} must be longer than zero")
    if result > MAX_INTERVAL:
        raise InvalidInput(f"interval {text!r} is longer than a year")
    return result
