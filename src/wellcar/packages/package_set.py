"""The package set folder: ``packages/<name>/package.toml`` and ``patches/series``.

``package.toml`` has ``source`` (the Debian source package), ``suite`` (the Debian suite
to follow), optionally ``version`` (a pinned Debian version; without it the suite's
newest is built), ``suffix`` (ours, appended to Debian's version, e.g. ``+wellcar1``) and
``why``. ``patches/series`` lists the patches in quilt order (comments and blank lines
allowed, no quilt options); each patch starts with DEP-3 headers.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import PackageSetError

PACKAGE_FILE = "package.toml"
PATCHES_DIR = "patches"
SERIES_FILE = "series"
# Debian policy 5.6.1: source package names.
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# Our suffix sorts after Debian's revision: "+", then a lowercase word and a number.
_SUFFIX_RE = re.compile(r"^\+[a-z]+[0-9]+$")
_VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")
_KEYS = {"source", "suite", "version", "suffix", "why"}


@dataclass(frozen=True)
class Patch:
    name: str
    path: Path
    description: str  # the DEP-3 Description (or Subject), first line

    @property
    def text(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class PackageSpec:
    """One source package of the set."""

    name: str  # the directory name
    directory: Path
    source: str
    suite: str
    version: str | None
    suffix: str
    why: str
    patches: tuple[Patch, ...]


def parse_dep3(text: str, where: str) -> dict[str, str]:
    """The DEP-3 header fields of a patch (up to the first blank line or ``---``).
    DEP-3 requires Description (or Subject) and, for a patch not taken from upstream, an
    Author (or From); Origin stands in for Author on a backport."""
    fields: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("---", "diff ", "Index: ")):
            break
        if line[0] in " \t" and current is not None:
            fields[current] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or " " in key:
            break
        current = key.strip().lower()
        fields[current] = value.strip()
    if not (fields.get("description") or fields.get("subject")):
        raise PackageSetError(f"{where}: no DEP-3 Description (or Subject) header")
    if not (fields.get("author") or fields.get("from") or fields.get("origin")):
        raise PackageSetError(f"{where}: no DEP-3 Author (or From, or Origin) header")
    return fields


def parse_series(text: str) -> list[str]:
    """Patch names in quilt's order; quilt's per-patch options (``-p0``) are refused,
    every patch applies with -p1."""
    names: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 1:
            raise PackageSetError(f"series line {raw!r}: options are not supported (use -p1)")
        names.append(parts[0])
    return names


def load_package(directory: Path) -> PackageSpec:
    where = directory / PACKAGE_FILE
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackageSetError(f"cannot read {where}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PackageSetError(f"{where} is not valid TOML: {exc}") from exc
    unknown = set(data) - _KEYS
    if unknown:
        raise PackageSetError(f"{where}: unknown keys {', '.join(sorted(unknown))}")

    def text(key: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise PackageSetError(f"{where}: {key} must be a non-empty string")
        return value

    source, suite, suffix, why = (str(text(k)) for k in ("source", "suite", "suffix", "why"))
    version = text("version", required=False)
    if not _SOURCE_RE.match(source):
        raise PackageSetError(f"{where}: source {source!r} is not a Debian source name")
    if not _SUFFIX_RE.match(suffix):
        raise PackageSetError(f"{where}: suffix {suffix!r} is not like +wellcar1")
    if version is not None and not _VERSION_RE.match(version):
        raise PackageSetError(f"{where}: version {version!r} is not a Debian version")
    patches_dir = directory / PATCHES_DIR
    series = patches_dir / SERIES_FILE
    patches: list[Patch] = []
    if series.is_file():
        for name in parse_series(series.read_text(encoding="utf-8")):
            path = patches_dir / name
            if "/" in name or not path.is_file():
                raise PackageSetError(f"{series}: {name} is not a file in {patches_dir}")
            header = parse_dep3(path.read_text(encoding="utf-8", errors="replace"), str(path))
            description = header.get("description") or header["subject"]
            patches.append(Patch(name, path, description.splitlines()[0]))
    return PackageSpec(
        directory.name, directory, source, suite, version, suffix, why, tuple(patches)
    )


def load_package_set(root: Path, names: list[str] | None = None) -> list[PackageSpec]:
    """Every package of the set under ``root`` (sorted by name), or only ``names``."""
    if not root.is_dir():
        raise PackageSetError(f"{root} is not a package set directory")
    available = sorted(p.parent.name for p in root.glob(f"*/{PACKAGE_FILE}"))
    chosen = names or available
    missing = [name for name in chosen if name not in available]
    if missing:
        raise PackageSetError(
            f"{', '.join(missing)}: not in the package set {root} (it has {', '.join(available)})"
        )
    return [load_package(root / name) for name in chosen]
