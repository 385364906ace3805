"""What `wellcar build` left in its output directory, checked before anything is released."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from wellcar.image.version import OsVersion, parse_version
from wellcar.release.errors import BuildDirError

# Released when present; the first three must be there (a node needs the payload, and
# the notes and feeds need the version and the package manifest).
REQUIRED = ("update.payload", "version.txt", "packages.txt")
OPTIONAL = ("disk.img", "usr.img", "usr.verity", "vmlinuz", "initrd.img")
SUMS = "SHA256SUMS"


def sha256_file(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def parse_packages(text: str) -> dict[str, str]:
    """``name=version`` lines (the build's package manifest)."""
    packages: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, version = line.split("=", 1)
        packages[name.strip()] = version.strip()
    return packages


def parse_version_txt(text: str) -> OsVersion:
    """The ``<PREFIX>_VERSION=`` line of version.txt (prefix depends on the brand)."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("_VERSION") and not key.endswith("_SDK_VERSION"):
            return parse_version(value.strip().strip('"'))
    raise ValueError("no *_VERSION= line")


@dataclass(frozen=True)
class BuildDir:
    path: Path
    version: OsVersion
    packages: dict[str, str]
    artifacts: dict[str, str]  # file name -> sha256

    @classmethod
    def read(cls, path: Path) -> BuildDir:
        if not path.is_dir():
            raise BuildDirError(f"{path} is not a directory (give the output of `wellcar build`)")
        for name in REQUIRED:
            if not (path / name).is_file():
                raise BuildDirError(f"{path} has no {name}: the build did not finish; rebuild it")
        sums_file = path / SUMS
        if not sums_file.is_file():
            raise BuildDirError(f"{path} has no {SUMS}: the build did not finish; rebuild it")
        listed: dict[str, str] = {}
        for line in sums_file.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.strip().partition("  ")
            if name:
                listed[name.strip()] = digest
        artifacts: dict[str, str] = {}
        for name in (*REQUIRED, *OPTIONAL):
            file = path / name
            if name in listed and not file.is_file():
                raise BuildDirError(f"{path}/{name} is missing but {SUMS} lists it")
            if not file.is_file():
                continue
            digest = sha256_file(file)
            if name in listed and listed[name] != digest:
                raise BuildDirError(
                    f"{path}/{name} does not match {SUMS}: it changed after the build; rebuild"
                )
            if name not in listed:
                raise BuildDirError(f"{path}/{name} is not in {SUMS}; rebuild")
            artifacts[name] = digest
        try:
            version = parse_version_txt((path / "version.txt").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BuildDirError(f"{path}/version.txt: {exc}") from None
        packages = parse_packages((path / "packages.txt").read_text(encoding="utf-8"))
        return cls(path, version, packages, artifacts)
