"""The series applied with GNU patch; a patch that no longer applies is named with its hunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.packages.errors import PatchError
from wellcar.packages.package_set import PackageSpec, Patch
from wellcar.packages.patching import QUILT_PREFIX, apply_series, failure_line

HEADER = "Description: change\nAuthor: Wellcar <packages@wellcar.dev>\n---\n"
DEFAULTS = "one\ntwo\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\nfour\nfive\n"


def make_tree(root: Path, source_format: str) -> Path:
    tree = root / "tree"
    (tree / "debian/source").mkdir(parents=True)
    (tree / "debian/source/format").write_text(source_format + "\n")
    (tree / "src").mkdir()
    (tree / "src/var.c").write_text(DEFAULTS)
    (tree / "debian/changelog").write_text(
        "demo (1.0-1) unstable; urgency=low\n\n  * x\n\n"
        " -- A <a@example.org>  Mon, 02 Jan 2023 10:00:00 +0100\n"
    )
    (tree / "debian/control").write_text("Source: demo\n\nPackage: demo\nArchitecture: all\n")
    return tree


def make_spec(root: Path, old: str, new: str) -> PackageSpec:
    body = f"--- a/src/var.c\n+++ b/src/var.c\n@@ -2,3 +2,3 @@\n two\n-{old}\n+{new}\n four\n"
    path = root / "default-path.patch"
    path.write_text(HEADER + body)
    patch = Patch(path.name, path, "change")
    return PackageSpec("demo", root, "demo", "bookworm", None, "+wellcar1", "why", (patch,))


OLD, NEW = "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PATH=/usr/sbin:/usr/bin"


def test_native_source_patched_in_place(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, "3.0 (native)")
    apply_series(make_spec(tmp_path, OLD, NEW), tree, "1.0")
    assert NEW + "\n" in (tree / "src/var.c").read_text()
    assert not (tree / "debian/patches").exists()


def test_quilt_source_carries_the_patch(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, "3.0 (quilt)")
    (tree / "debian/patches").mkdir()
    (tree / "debian/patches/series").write_text("debian-own.patch")  # no final newline
    (tree / "debian/patches/debian-own.patch").write_text("")
    (tree / ".pc").mkdir()
    (tree / ".pc/applied-patches").write_text("debian-own.patch\n")
    (tree / ".pc/.quilt_patches").write_text("debian/patches\n")
    (tree / ".pc/.quilt_series").write_text("series\n")
    (tree / ".pc/.version").write_text("2\n")
    apply_series(make_spec(tmp_path, OLD, NEW), tree, "1.0-1")
    series = (tree / "debian/patches/series").read_text().splitlines()
    assert series == ["debian-own.patch", f"{QUILT_PREFIX}default-path.patch"]
    assert NEW + "\n" in (tree / "src/var.c").read_text()
    assert f"{QUILT_PREFIX}default-path.patch" in (tree / ".pc/applied-patches").read_text()


def test_patch_that_no_longer_applies(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, "3.0 (native)")
    spec = make_spec(tmp_path, "PATH=/bin", NEW)  # Debian moved: the context changed
    with pytest.raises(PatchError) as caught:
        apply_series(spec, tree, "1.0-2")
    message = str(caught.value)
    assert message == ("demo: patch default-path.patch does not apply to demo 1.0-2: "
                       "hunk #1 of src/var.c (at line 2)")  # fmt: skip
    assert "\n" not in message
    assert (tree / "src/var.c").read_text() == DEFAULTS  # the tree is untouched


def test_failure_lines() -> None:
    assert failure_line("can't find file to patch at input line 3\n").startswith("a file")
    out = "patching file src/x.c\nReversed (or previously applied) patch detected!  Skipping"
    assert "already has this change" in failure_line(out)
