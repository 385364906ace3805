"""verify's comparison of two .debs, on real .debs made by dpkg-deb."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wellcar.packages.verify import compare_debs


def deb(
    directory: Path,
    name: str,
    files: dict[str, str],
    mtime: int = 1_700_000_000,
    clamp: bool = True,
) -> Path:
    root = directory / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: demo\nVersion: 1-1\nArchitecture: all\nMaintainer: A <a@example.org>\n"
        "Description: demo\n"
    )
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime))
    out = directory / f"{name}.deb"
    # dpkg-deb clamps file times to SOURCE_DATE_EPOCH; without it they are the files'.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    if clamp:
        env["SOURCE_DATE_EPOCH"] = "1700000000"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
        env=env,
    )
    return out


FILES = {"usr/bin/demo": "#!/bin/sh\n", "usr/share/doc/demo/copyright": "GPL\n"}


def kinds(differences: list) -> set[tuple[str, str, str]]:  # type: ignore[type-arg]
    return {(d.archive, d.path, d.kind) for d in differences}


def test_identical(tmp_path: Path) -> None:
    a, b = deb(tmp_path, "a", FILES), deb(tmp_path, "b", FILES)
    assert a.read_bytes() == b.read_bytes()
    assert compare_debs(a, b) == []


def test_content_timestamp_and_missing(tmp_path: Path) -> None:
    ours = deb(tmp_path, "ours", {**FILES, "usr/bin/demo": "#!/bin/sh\necho\n", "usr/new": "x"})
    theirs = deb(tmp_path, "theirs", FILES)
    found = kinds(compare_debs(ours, theirs))
    assert ("data", "usr/bin/demo", "content") in found
    assert ("data", "usr/new", "only-ours") in found
    later = deb(tmp_path, "later", FILES, mtime=1_700_000_999, clamp=False)
    found = kinds(compare_debs(later, theirs))
    assert ("data", "usr/share/doc/demo/copyright", "timestamp") in found
    assert all(kind != "content" for _, _, kind in found)


def test_container_only(tmp_path: Path) -> None:
    xz = deb(tmp_path, "xz", FILES)
    gz = tmp_path / "gz.deb"
    root = tmp_path / "xz-root"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(gz)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert kinds(compare_debs(xz, gz)) == {("", "", "container")}
