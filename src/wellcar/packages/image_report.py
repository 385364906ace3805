"""What an image is built from: each installed package's source and origin.

The image build's ``packages.txt`` (binary=version) is the list. A package whose version is
the one in Wellcar's repository was built by us (from which source, with which patches,
with which .buildinfo: the repository's pool holds them); any other is Debian's binary,
whose source comes from Debian's signed Packages index, and which is either verified
(``verify`` rebuilt that source version here bit-identical), known to differ, or not yet
checked. The independence figure is the share built by us or verified identical.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .control_file import parse_paragraphs
from .errors import PackageError
from .repository import Repository
from .sources import AptState
from .verify import VerifyResult

MANIFEST_FILE = "packages.txt"  # written by wellcar.image.build: one name=version a line
_SOURCE_RE = re.compile(r"^(?P<name>\S+)(?: \((?P<version>[^)]+)\))?$")


class Origin(StrEnum):
    OURS = "built by Wellcar"
    VERIFIED = "Debian binary, rebuilt bit-identical"
    DIFFERS = "Debian binary, rebuild differs"
    UNCHECKED = "Debian binary, not yet checked"


@dataclass(frozen=True)
class ImagePackage:
    name: str
    version: str
    source: str
    source_version: str
    origin: Origin


@dataclass(frozen=True)
class ImageStatus:
    packages: list[ImagePackage]

    def count(self, origin: Origin) -> int:
        return sum(p.origin is origin for p in self.packages)

    @property
    def independence(self) -> float:
        """Share of the image's packages built by us or verified bit-identical."""
        done = self.count(Origin.OURS) + self.count(Origin.VERIFIED)
        return done / len(self.packages) if self.packages else 0.0


def read_manifest(build: Path) -> dict[str, str]:
    path = build / MANIFEST_FILE
    if not path.is_file():
        raise PackageError(f"{build} is not an image build (no {MANIFEST_FILE})")
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def source_of(paragraph: dict[str, str]) -> tuple[str, str]:
    """(source, source version) of a Packages paragraph; Source may carry its version."""
    match = _SOURCE_RE.match(paragraph.get("Source", paragraph["Package"]))
    if match is None:
        return paragraph["Package"], paragraph["Version"]
    return match["name"], match["version"] or paragraph["Version"]


def debian_sources(
    apt: AptState, packages: Iterable[tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """binary -> (source, source version) from Debian's Packages index (versions the index
    no longer has are left out)."""
    requests = [f"{name}={version}" for name, version in packages]
    if not requests:
        return {}
    result = subprocess.run(
        ["apt-cache", *apt.options(), "show", "--no-all-versions", *requests],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {}
    for paragraph in parse_paragraphs(result.stdout):
        if "Package" in paragraph and "Version" in paragraph:
            found[paragraph["Package"]] = source_of(paragraph)
    return found


def image_status(
    manifest: dict[str, str],
    repository: Repository | None,
    apt: AptState,
    verified: dict[tuple[str, str], VerifyResult],
) -> ImageStatus:
    ours: dict[str, dict[str, str]] = {}
    if repository is not None:
        repository.binaries()  # a RepositoryError if it is not one
        text = repository.packages_index.read_text(encoding="utf-8")
        ours = {p["Package"]: p for p in parse_paragraphs(text)}
    theirs = [(n, v) for n, v in manifest.items() if ours.get(n, {}).get("Version") != v]
    debian = debian_sources(apt, theirs)
    packages = []
    for name, version in sorted(manifest.items()):
        if name in ours and ours[name]["Version"] == version:
            source, source_version = source_of(ours[name])
            origin = Origin.OURS
        else:
            source, source_version = debian.get(name, (name, version))
            check = verified.get((source, source_version))
            if check is None:
                origin = Origin.UNCHECKED
            else:
                same = any(d.package == name and d.identical for d in check.debs)
                origin = Origin.VERIFIED if same else Origin.DIFFERS
        packages.append(ImagePackage(name, version, source, source_version, origin))
    return ImageStatus(packages)
