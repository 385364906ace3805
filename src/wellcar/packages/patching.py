"""Applying the set's patch series to an unpacked Debian source tree.

Every patch is first applied with GNU patch to a scratch copy, in series order, so that one
that no longer applies is reported by name and hunk before the tree is touched. Then:
a ``3.0 (quilt)`` source gets the patches in ``debian/patches`` (prefixed ``wellcar-``,
after Debian's in ``series``) and ``dpkg-source --before-build`` applies them, so the
source package we publish carries them as Debian carries its own; a ``3.0 (native)`` or
``1.0`` source is patched in place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import PatchError, SourceError
from .package_set import PackageSpec, Patch

QUILT_PREFIX = "wellcar-"
_FILE_RE = re.compile(r"^(?:patching|checking) file '?(?P<file>[^']+?)'?$")
_HUNK_RE = re.compile(r"^Hunk #(?P<hunk>\d+) FAILED at (?P<line>\d+)")


def failure_line(output: str) -> str:
    """What patch said about the first failed hunk: ``hunk #2 of src/var.c (at line 77)``."""
    current = "?"
    for line in output.splitlines():
        file_match = _FILE_RE.match(line.strip())
        if file_match:
            current = file_match["file"]
            continue
        hunk = _HUNK_RE.match(line.strip())
        if hunk:
            return f"hunk #{hunk['hunk']} of {current} (at line {hunk['line']})"
        if "can't find file to patch" in line or "No file to patch" in line:
            return f"a file it patches does not exist ({current})"
        if "Reversed (or previously applied) patch" in line:
            return f"{current} already has this change (reversed or applied patch)"
    return (output.strip().splitlines() or ["patch failed"])[-1]


def _patch(tree: Path, patch: Patch) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "patch",
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-r",
            "-",
            "-i",
            str(patch.path.resolve()),
        ],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def check_series(spec: PackageSpec, tree: Path, debian_version: str) -> None:
    """Apply the series to a scratch copy; the first patch that fails is a PatchError."""
    with tempfile.TemporaryDirectory(prefix="wellcar-patch-") as scratch:
        copy = Path(scratch) / "tree"
        shutil.copytree(tree, copy, symlinks=True)
        for patch in spec.patches:
            result = _patch(copy, patch)
            if result.returncode != 0:
                raise PatchError(
                    f"{spec.name}: patch {patch.name} does not apply to "
                    f"{spec.source} {debian_version}: "
                    f"{failure_line(result.stdout)}"
                )


def source_format(tree: Path) -> str:
    path = tree / "debian/source/format"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "1.0"


def apply_series(spec: PackageSpec, tree: Path, debian_version: str) -> None:
    check_series(spec, tree, debian_version)
    if not spec.patches:
        return
    if source_format(tree) == "3.0 (quilt)":
        patches = tree / "debian/patches"
        patches.mkdir(exist_ok=True)
        series = patches / "series"
        text = series.read_text(encoding="utf-8") if series.is_file() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        for patch in spec.patches:
            shutil.copyfile(patch.path, patches / f"{QUILT_PREFIX}{patch.name}")
            text += f"{QUILT_PREFIX}{patch.name}\n"
        series.write_text(text, encoding="utf-8")
        result = subprocess.run(
            ["dpkg-source", "--before-build", str(tree)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SourceError(
                f"{spec.name}: dpkg-source --before-build: {failure_line(result.stdout)}"
            )
        return
    for patch in spec.patches:
        result = _patch(tree, patch)
        if result.returncode != 0:  # check_series passed; only a race gets here
            raise PatchError(f"{spec.name}: patch {patch.name}: {failure_line(result.stdout)}")
