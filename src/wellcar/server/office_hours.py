"""Office hours: when a group may start updates, in the group's time zone.

Nebraska hard-codes Monday-Friday 09:00-17:00. Wellcar keeps that as the default and
lets a group say otherwise with a spec such as "mon-fri 09:00-17:00",
"mon,wed,fri 22:00-06:00" (an overnight window) or "sat-sun 00:00-24:00".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wellcar.server.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SPEC = "mon-fri 09:00-17:00"
_SPEC = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class OfficeHours:
    days: frozenset[int]  # 0 = Monday
    start_minute: int  # minutes after midnight
    end_minute: int  # may be <= start: the window runs past midnight

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start_minute < self.end_minute:
            return day in self.days and self.start_minute <= minute < self.end_minute
        # Overnight: the part before midnight belongs to `day`, the rest to the day before.
        if minute >= self.start_minute:
            return day in self.days
        return minute < self.end_minute and (day - 1) % 7 in self.days


def _day_set(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in DAYS or last not in DAYS:
                raise InvalidInput(f"unknown day in {part!r}: use {', '.join(DAYS)}")
            i, j = DAYS.index(first), DAYS.index(last)
            while True:
                days.add(i)
                if i == j:
                    break
                i = (i + 1) % 7
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise InvalidInput(f"unknown day {part!r}: use {', '.join(DAYS)}")
    return frozenset(days)


@lru_cache(maxsize=256)
def parse_office_hours(spec: str) -> OfficeHours:
    m = _SPEC.match(spec)
    if m is None:
        raise InvalidInput(f"invalid office hours {spec!r}: write them like {DEFAULT_SPEC!r}")
    sh, sm, eh, em = (int(m.group(i)) for i in (2, 3, 4, 5))
    if sh > 23 or sm > 59 or eh > 24 or em > 59 or (eh == 24 and em != 0):
        raise InvalidInput(f"invalid time in office hours {spec!r}")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise InvalidInput(f"office hours {spec!r} are empty: start and end are equal")
    return OfficeHours(_day_set(m.group(1)), start, end)


@lru_cache(maxsize=512)
def load_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: absurdly long names
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name like 'Europe/Berlin'"
        ) from exc


def is_valid_timezone(name: str | None) -> bool:
    if not name:
        return False
    try:
        load_timezone(name)
    except InvalidInput:
        return False
    return True


def in_office_hours(now_utc: datetime, timezone: str | None, spec: str) -> bool:
    """Whether `now_utc` (aware) is in office hours; an unknown zone never is (Nebraska)."""
    if not is_valid_timezone(timezone):
        return False
    assert timezone is not None
    local = now_utc.astimezone(load_timezone(timezone))
    return parse_office_hours(spec).contains(local)
