"""The `duration` parameter of instance lists and statistics: a window and its time step."""

from __future__ import annotations

from datetime import timedelta

from wellcar.server.errors import InvalidInput

# duration parameter -> (window, bucket step), as Nebraska's durationCodeToPostgresTimings.
DURATIONS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=15)),
    "1d": (timedelta(days=1), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(days=1)),
    "30d": (timedelta(days=30), timedelta(days=3)),
}


def parse_duration(value: str) -> tuple[timedelta, timedelta]:
    try:
        return DURATIONS[value.strip()]
    except KeyError:
        raise InvalidInput(f"duration: {value!r} is not one of {', '.join(DURATIONS)}") from None
