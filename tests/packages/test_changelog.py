"""Our version and changelog entry on top of Debian's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wellcar.packages.changelog import our_version, prepend_entry, read_head
from wellcar.packages.errors import SourceError
from wellcar.packages.package_set import PackageSpec, Patch

DEBIAN = """dash (0.5.12-2) unstable; urgency=medium

  * Fix something.

 -- Andrej Shadura <andrewsh@debian.org>  Thu, 05 Jan 2023 14:20:53 +0100

dash (0.5.12-1) unstable; urgency=medium

  * New upstream.

 -- Andrej Shadura <andrewsh@debian.org>  Mon, 02 Jan 2023 10:00:00 +0100
"""


def spec(tmp_path: Path) -> PackageSpec:
    patch = Patch("merged-usr.patch", tmp_path / "merged-usr.patch", "Default PATH")
    return PackageSpec("dash", tmp_path, "dash", "bookworm", None, "+wellcar1", "a reason",
                       (patch,))  # fmt: skip


def test_version_sorts_between_debian_versions() -> None:
    ours = our_version("0.5.12-2", "+wellcar1")
    assert ours == "0.5.12-2+wellcar1"
    # Not below a stable update (0.5.12-2+deb12u1 < ours): a newer Debian source is
    # followed by rebuilding it (docs/packages.md), the version alone would not show it.
    for lower, higher in (("0.5.12-2", ours), (ours, "0.5.12-3"), ("0.5.12-2+deb12u1", ours)):
        subprocess.run(["dpkg", "--compare-versions", lower, "lt", higher], check=True)


def test_entry_prepended_and_parsed_by_dpkg(tmp_path: Path) -> None:
    text, version = prepend_entry(DEBIAN, spec(tmp_path))
    assert version == "0.5.12-2+wellcar1"
    assert text.endswith(DEBIAN)
    (tmp_path / "changelog").write_text(text)
    parsed = subprocess.run(["dpkg-parsechangelog", "-l", str(tmp_path / "changelog")],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "Version: 0.5.12-2+wellcar1" in parsed
    assert "Distribution: bookworm" in parsed
    # Dated as Debian's entry: SOURCE_DATE_EPOCH does not move with our rebuild.
    assert "Date: Thu, 05 Jan 2023 14:20:53 +0100" in parsed
    assert "merged-usr.patch: Default PATH" in parsed


def test_wrong_source_or_garbage(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is for bash"):
        prepend_entry(DEBIAN.replace("dash (", "bash ("), spec(tmp_path))
    with pytest.raises(SourceError, match="not an entry"):
        read_head("garbage\n")
    with pytest.raises(SourceError, match="no complete entry"):
        read_head("dash (1-1) unstable; urgency=low\n\n  * x\n")
