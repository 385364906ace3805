"""Cache keys: the same inputs give the same key, any changed input another."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wellcar.packages.builder import build_key
from wellcar.packages.chroot import chroot_key
from wellcar.packages.package_set import PackageSpec, Patch
from wellcar.packages.sources import DebianSource, SourceFile

MIRRORS = ("deb http://deb.debian.org/debian bookworm main",)


def spec_and_source(
    tmp_path: Path, patch_text: str = "Description: x\n"
) -> tuple[PackageSpec, DebianSource]:
    patch = tmp_path / "a.patch"
    patch.write_text(patch_text)
    spec = PackageSpec(
        "dash",
        tmp_path,
        "dash",
        "bookworm",
        None,
        "+wellcar1",
        "why",
        (Patch("a.patch", patch, "x"),),
    )
    source = DebianSource(
        "dash", "0.5.12-2", tmp_path, (SourceFile("dash_0.5.12-2.dsc", 10, "a" * 64),)
    )
    return spec, source


def test_build_key(tmp_path: Path) -> None:
    spec, source = spec_and_source(tmp_path)
    key = build_key(spec, source, None, environment="env1")
    assert key == build_key(spec, source, None, environment="env1")
    assert key != build_key(spec, source, None, environment="env2")
    assert key != build_key(replace(spec, suffix="+wellcar2"), source, None, environment="env1")
    other_dsc = replace(source, files=(SourceFile("dash_0.5.12-2.dsc", 10, "b" * 64),))
    assert key != build_key(spec, other_dsc, None, environment="env1")
    (tmp_path / "a.patch").write_text("Description: x\n+changed\n")
    assert key != build_key(spec, source, None, environment="env1")


def test_chroot_key() -> None:
    fields = {"Build-Depends": "debhelper-compat (= 13)", "Source": "dash"}
    key = chroot_key("bookworm", MIRRORS, fields, "mmdebstrap 1.3.5")
    # Only the build-dependency fields count: another source with the same ones shares it.
    assert key == chroot_key("bookworm", MIRRORS, {**fields, "Source": "x"}, "mmdebstrap 1.3.5")
    assert key != chroot_key(
        "bookworm", MIRRORS, {**fields, "Build-Depends-Indep": "perl"}, "mmdebstrap 1.3.5"
    )
    assert key != chroot_key("trixie", MIRRORS, fields, "mmdebstrap 1.3.5")
    assert key != chroot_key("bookworm", MIRRORS, fields, "mmdebstrap 1.5.0")
