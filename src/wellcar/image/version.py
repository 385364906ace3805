"""Flatcar's version scheme: MAJOR.MINOR.PATCH with MAJOR = days since 2013-07-01 UTC.

MINOR is the channel (0 alpha, 1 beta, 2 stable, 3 lts) and PATCH counts point releases
in that channel. Keeping Flatcar's scheme means Wellcar versions sort and compare the way
update servers and operators migrating from Flatcar expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

# COREOS_EPOCH in flatcar/scripts: 2013-07-01T00:00:00Z.
EPOCH = 1372636800
CHANNELS: tuple[str, ...] = ("alpha", "beta", "stable", "lts")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class OsVersion:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def channel(self) -> str:
        return CHANNELS[self.minor] if self.minor < len(CHANNELS) else f"minor-{self.minor}"

    @property
    def day_epoch(self) -> int:
        """Midnight UTC of the MAJOR's day: the default SOURCE_DATE_EPOCH of a build, so
        that rebuilding a version gives the same timestamps without configuring anything."""
        return EPOCH + self.major * 86400


def major_for(when: datetime) -> int:
    return int(when.astimezone(UTC).timestamp() - EPOCH) // 86400


def parse_os_version(text: str) -> OsVersion:
    """Parse ``MAJOR.MINOR.PATCH``; raises ValueError with the expected shape."""
    match = _VERSION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not MAJOR.MINOR.PATCH (for example 4799.0.0)")
    return OsVersion(*(int(part) for part in match.groups()))


def version_for(when: datetime, channel: str = "alpha", patch: int = 0) -> OsVersion:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    return OsVersion(major_for(when), CHANNELS.index(channel), patch)


def today_version() -> OsVersion:
    return version_for(datetime.now(UTC))
