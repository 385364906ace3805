"""Semantic versions as Nebraska compares them (blang/semver rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
MAX_VERSION_LENGTH = 100


@dataclass(frozen=True, slots=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()


@lru_cache(maxsize=4096)
def parse_semver(text: str) -> Version | None:
    """The version, or None when `text` is not valid semver (build metadata is ignored)."""
    if len(text) > MAX_VERSION_LENGTH:
        return None
    m = _SEMVER.match(text)
    if m is None:
        return None
    major, minor, patch = (int(m.group(i)) for i in (1, 2, 3))
    pre: tuple[int | str, ...] = ()
    if m.group(4):
        pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split("."))
    return Version(major, minor, patch, pre)


def is_valid(text: str) -> bool:
    return parse_semver(text) is not None


def sort_key(text: str) -> Version:
    """The version to sort by; an invalid version counts as 0.0.0, as in Nebraska."""
    return parse_semver(text) or Version(0, 0, 0)


def less_than(a: str, b: str) -> bool:
    """a < b; an invalid version counts as 0.0.0, as Nebraska's ignored parse errors do."""
    return sort_key(a) < sort_key(b)
