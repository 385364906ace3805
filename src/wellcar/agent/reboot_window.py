"""locksmith's reboot window: ``LOCKSMITHD_REBOOT_WINDOW_START`` and ``_LENGTH``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .durations import format_duration, parse_duration

__all__ = ["RebootWindow", "parse_window_start"]

_WEEKDAYS = {
    name: i
    for i, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW_START = re.compile(r"(?:([A-Za-z]+)\s+)?(\d{1,2}):(\d{2})")
_US_PER_DAY = 86_400 * 1_000_000


def parse_window_start(text: str) -> tuple[int | None, time]:
    """``"14:00"`` → ``(None, 14:00)``, ``"Thu 23:00"`` → ``(3, 23:00)``
    (day names as locksmith takes them: three letters or in full, any case)."""
    m = _WINDOW_START.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text[:40]!r} is not '[Day] HH:MM'")
    weekday: int | None = None
    if m.group(1) is not None:
        weekday = _WEEKDAYS.get(m.group(1).lower())
        if weekday is None:
            raise ValueError(f"unknown day {m.group(1)[:20]!r}")
    hour, minute = int(m.group(2)), int(m.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{text[:40]!r} is not a time of day")
    return weekday, time(hour, minute)


@dataclass(frozen=True, slots=True)
class RebootWindow:
    """locksmith's reboot window: daily (``14:00``) or weekly (``Thu 23:00``),
    open for ``length`` from each start.

    Times are wall-clock times compared with the wall clock of the datetime
    passed in (naive or aware): the daemon passes local time, as locksmith
    uses the node's local time zone. Around a DST change a window opens at the
    same wall-clock time, so it may be an hour longer or shorter in real time.
    """

    start: time
    length: timedelta
    weekday: int | None = None  # 0 = Monday; None = every day

    def __post_init__(self) -> None:
        if self.length <= timedelta(0):
            raise ValueError("reboot window length must be positive")
        if self.length > self._period():
            raise ValueError(
                f"reboot window length {format_duration(self.length)} is longer than its "
                f"period ({'a week' if self.weekday is not None else 'a day'})"
            )

    @classmethod
    def parse(cls, start: str, length: str) -> RebootWindow:
        """From ``LOCKSMITHD_REBOOT_WINDOW_START``/``_LENGTH``; ``ValueError`` if bad."""
        weekday, at = parse_window_start(start)
        return cls(start=at, length=parse_duration(length), weekday=weekday)

    def _period(self) -> timedelta:
        return timedelta(days=7 if self.weekday is not None else 1)

    def _offset_us(self, dt: datetime) -> int:
        """Microseconds from the window's start back in the current period."""
        day_us = ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000 + dt.microsecond
        start_us = (self.start.hour * 60 + self.start.minute) * 60 * 1_000_000
        if self.weekday is not None:
            day_us += dt.weekday() * _US_PER_DAY
            start_us += self.weekday * _US_PER_DAY
        period_us = (7 if self.weekday is not None else 1) * _US_PER_DAY
        return (day_us - start_us) % period_us

    def contains(self, dt: datetime) -> bool:
        """Is the window open at ``dt`` (start inclusive, end exclusive)?"""
        return self._offset_us(dt) < self.length // timedelta(microseconds=1)

    def next_start(self, dt: datetime) -> datetime:
        """The first window start at or after ``dt``."""
        offset = self._offset_us(dt)
        if offset == 0:
            return dt
        period_us = self._period() // timedelta(microseconds=1)
        return dt + timedelta(microseconds=period_us - offset)

    def __str__(self) -> str:
        day = f"{_WEEKDAY_NAMES[self.weekday]} " if self.weekday is not None else ""
        return f"{day}{self.start:%H:%M} for {format_duration(self.length)}"
