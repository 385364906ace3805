"""Our version of a rebuilt package and the debian/changelog entry that sets it.

The version is Debian's with our suffix appended (``0.5.12-2`` → ``0.5.12-2+wellcar1``):
it sorts above the Debian version it is built from and below Debian's next one. The entry
is dated as Debian's newest entry, so SOURCE_DATE_EPOCH (dpkg takes it from the changelog)
is Debian's and an unchanged input gives the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SourceError
from .package_set import PackageSpec

MAINTAINER = "Wellcar <packages@wellcar.dev>"
# The first line of an entry: "source (version) distribution(s); urgency=...".
_HEADER_RE = re.compile(
    r"^(?P<source>[a-z0-9][a-z0-9+.-]+) \((?P<version>[^)]+)\) (?P<dists>[^;]+);"
)
_TRAILER_RE = re.compile(r"^ -- (?P<maintainer>.+?)  (?P<date>.+)$")


@dataclass(frozen=True)
class ChangelogHead:
    """The newest entry of a debian/changelog."""

    source: str
    version: str
    date: str  # RFC 5322, as written


def read_head(changelog: str) -> ChangelogHead:
    header: re.Match[str] | None = None
    for line in changelog.splitlines():
        if header is None:
            if line.strip():
                header = _HEADER_RE.match(line)
                if header is None:
                    raise SourceError(f"debian/changelog starts with {line!r}, not an entry")
            continue
        trailer = _TRAILER_RE.match(line)
        if trailer:
            return ChangelogHead(header["source"], header["version"], trailer["date"])
    raise SourceError("debian/changelog has no complete entry")


def our_version(debian_version: str, suffix: str) -> str:
    return f"{debian_version}{suffix}"


def render_entry(spec: PackageSpec, head: ChangelogHead) -> str:
    """The entry prepended to Debian's changelog."""
    lines = [
        f"{head.source} ({our_version(head.version, spec.suffix)}) {spec.suite}; urgency=medium",
        "",
        f"  * Rebuilt by Wellcar: {spec.why}.",
    ]
    lines += [f"  * {patch.name}: {patch.description}" for patch in spec.patches]
    lines += ["", f" -- {MAINTAINER}  {head.date}", "", ""]
    return "\n".join(lines)


def prepend_entry(changelog: str, spec: PackageSpec) -> tuple[str, str]:
    """The new changelog text and the version it sets."""
    head = read_head(changelog)
    if head.source != spec.source:
        raise SourceError(f"debian/changelog is for {head.source}, the set names {spec.source}")
    return render_entry(spec, head) + changelog, our_version(head.version, spec.suffix)
