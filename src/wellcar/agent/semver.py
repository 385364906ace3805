"""Semantic versions as the agent compares them (Nebraska's rules; build metadata ignored).

Which offered version counts as newer than the running one; the release feed's
``MAJOR.MINOR.PATCH`` is :func:`wellcar.image.version.parse_os_version`'s job.
"""

from __future__ import annotations

import re

__all__ = ["SemverKey", "is_newer_version", "semver_sort_key"]

_PRE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
SemverKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def semver_sort_key(text: str) -> SemverKey | None:
    """A sort key for a semantic version (as Nebraska compares them), or None
    when ``text`` is not one. Build metadata (``+…``) does not take part."""
    if len(text) > 128:
        return None
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    pre: tuple[tuple[int, int | str], ...] = ()
    if m.group(4):
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in m.group(4).split("."))
    # A release sorts after its pre-releases: 1.0.0-rc.1 < 1.0.0.
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre)


def is_newer_version(candidate: str, current: str) -> bool:
    """True when ``candidate`` is a valid semver strictly newer than ``current``
    (an invalid ``current`` counts as 0.0.0, an invalid candidate is never newer)."""
    cand = semver_sort_key(candidate)
    if cand is None:
        return False
    cur = semver_sort_key(current) or (0, 0, 0, 1, ())
    return cand > cur
