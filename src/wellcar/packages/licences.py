"""Licences of a binary package, read from its ``/usr/share/doc/<package>/copyright``.

Debian's machine-readable copyright format (DEP-5) names each licence in ``License:``
fields; those short names (``GPL-2+``, ``BSD-3-clause``...) are collected as written.
A copyright file in free form gives no names: the SBOM then says the licence was not
determined rather than guess. The file is read from the package's .deb (the image build's
package cache holds every .deb it installed), and the answer kept in a JSON cache.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from .control_file import parse_paragraphs

DEP5_PREFIX = "https://www.debian.org/doc/packaging-manuals/copyright-format/"


def licences_from_copyright(text: str) -> list[str]:
    paragraphs = parse_paragraphs(text)
    if not paragraphs or not paragraphs[0].get("Format", "").startswith(
        (DEP5_PREFIX, DEP5_PREFIX.replace("https", "http"))
    ):
        return []
    names: list[str] = []
    for paragraph in paragraphs:
        first = paragraph.get("License", "").split("\n", 1)[0].strip()
        if first and first not in names:
            names.append(first)
    return names


def copyright_text(deb: Path, package: str) -> str | None:
    wanted = f"./usr/share/doc/{package}/copyright"
    with subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for info in archive:
                if info.name == wanted and info.isfile():
                    stream = archive.extractfile(info)
                    text = stream.read().decode(errors="replace") if stream else None
                    proc.kill()  # the rest of the archive is not needed
                    return text
    return None


def deb_file(directories: list[Path], package: str, version: str) -> Path | None:
    escaped = version.replace(":", "%3a")
    for directory in directories:
        for arch in ("amd64", "all"):
            for path in (
                directory / f"{package}_{escaped}_{arch}.deb",
                *directory.glob(f"*/{package}_{escaped}_{arch}.deb"),
            ):
                if path.is_file():
                    return path
    return None


class LicenceCache:
    """``(package, version) -> licence names`` (None: no .deb found), kept in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, list[str] | None] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        )

    def licences(self, directories: list[Path], package: str, version: str) -> list[str] | None:
        key = f"{package}={version}"
        if key not in self.data:
            deb = deb_file(directories, package, version)
            if deb is None:
                return None  # not cached: the .deb may be there next time
            text = copyright_text(deb, package)
            self.data[key] = licences_from_copyright(text) if text else []
        return self.data[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True), encoding="utf-8")
