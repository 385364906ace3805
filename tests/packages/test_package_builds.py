"""Real builds of the package set from Debian sources, in a clean chroot without network.

The build cache (chroots, sources, outputs) is shared across runs on purpose, outside the
repository (``$WELLCAR_PACKAGE_BUILD_CACHE`` or ~/.cache/wellcar/package-builds), as the
image builds share their package cache: the first run builds (a few minutes), later runs
find every package in the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.image.settings import DEFAULT_MIRRORS
from wellcar.packages.builder import BuildResult, build_set
from wellcar.packages.errors import BuildError, SourceError
from wellcar.packages.layout import BuildCache, default_cache_dir
from wellcar.packages.package_set import load_package_set

pytestmark = pytest.mark.slow
SET = Path(__file__).resolve().parents[2] / "packages"
TOOLS = ("mmdebstrap", "unshare", "dpkg-buildpackage", "dpkg-source", "patch", "apt-get")


def build(names: list[str]) -> dict[str, BuildResult]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"package builds need {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("mmdebstrap --mode=root and chroot need root")
    cache = BuildCache(default_cache_dir())
    try:
        results = build_set(load_package_set(SET, names), cache, DEFAULT_MIRRORS, lambda _: None)
    except SourceError as exc:
        if any(s in str(exc) for s in ("Could not resolve", "Failed to fetch", "Temporary")):
            pytest.skip(f"the Debian mirror is unreachable: {exc}")
        raise
    return {r.name: r for r in results}


@pytest.fixture(scope="module")
def builds() -> dict[str, BuildResult]:
    return build(["base-files", "dash"])


def extract(deb: Path, target: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def test_dash_built_with_our_patch(builds: dict[str, BuildResult], tmp_path: Path) -> None:
    dash = builds["dash"]
    assert dash.version == "0.5.12-2+wellcar1"
    assert dash.binaries["dash"] == "0.5.12-2+wellcar1"
    names = set(dash.files)
    for suffix in ("_amd64.deb", "_amd64.buildinfo", "_amd64.changes", ".dsc"):
        assert f"dash_0.5.12-2+wellcar1{suffix}" in names
    assert dash.log.is_file()
    root = extract(dash.path / "dash_0.5.12-2+wellcar1_amd64.deb", tmp_path / "dash")
    shown = subprocess.run(
        ["env", "-i", str(root / "bin/dash"), "-c", "echo $PATH"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.strip() == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
    # The published source carries the patch after Debian's own.
    dsc = (dash.path / "dash_0.5.12-2+wellcar1.dsc").read_text()
    assert "dash_0.5.12-2+wellcar1.debian.tar.xz" in dsc
    listing = subprocess.run(
        ["tar", "-tf", str(dash.path / "dash_0.5.12-2+wellcar1.debian.tar.xz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "debian/patches/wellcar-merged-usr-default-path.patch" in listing
    buildinfo = (dash.path / "dash_0.5.12-2+wellcar1_amd64.buildinfo").read_text()
    assert "Installed-Build-Depends:" in buildinfo


def test_base_files_branded(builds: dict[str, BuildResult], tmp_path: Path) -> None:
    base = builds["base-files"]
    assert base.version.endswith("+wellcar1")
    deb = next(
        base.path / f for f in base.files if f.startswith("base-files_") and f.endswith(".deb")
    )
    root = extract(deb, tmp_path / "base-files")
    os_release = (root / "usr/lib/os-release").read_text()
    assert 'NAME="Wellcar"' in os_release and "ID=wellcar" in os_release
    assert "Debian" not in os_release
    assert (root / "etc/issue").read_text().startswith("Wellcar Linux")
    assert "Parent: Debian" in (root / "etc/dpkg/origins/wellcar").read_text()


def test_unchanged_packages_are_not_rebuilt(builds: dict[str, BuildResult]) -> None:
    again = build(["dash", "base-files"])
    for name, first in builds.items():
        assert again[name].cached
        assert again[name].key == first.key
        assert again[name].directory == first.directory


def test_rootfs_takes_our_packages(builds: dict[str, BuildResult], tmp_path: Path) -> None:
    """The image build's mmdebstrap step (minbase, the smallest package list) with the
    repository: base-files and dash are ours, and the pin is not left in the tree."""
    from wellcar.image.rootfs import installed_packages, run_mmdebstrap
    from wellcar.image.settings import resolve_settings
    from wellcar.packages.repo_key import ensure_dev_key
    from wellcar.packages.repository import publish_repository

    key = ensure_dev_key(tmp_path / "dev-keys")
    repo = publish_repository(tmp_path / "repo", list(builds.values()), key)
    settings = resolve_settings(None, {"packages": "netbase", "package_repository": str(repo.root)})
    rootfs = tmp_path / "rootfs"
    run_mmdebstrap(settings, rootfs, tmp_path / "build.log")
    installed = installed_packages(rootfs)
    assert installed["dash"] == builds["dash"].version
    assert installed["base-files"] == builds["base-files"].version
    assert "ID=wellcar" in (rootfs / "usr/lib/os-release").read_text()
    assert list((rootfs / "etc/apt/preferences.d").iterdir()) == []


BROKEN_RULES = """Description: Break the build (a test of build failures)
Author: Wellcar <packages@wellcar.dev>
---
--- a/debian/rules
+++ b/debian/rules
@@ -1 +1,2 @@
 #!/usr/bin/make -f
+$(error deliberately broken by a Wellcar test)
"""


def test_build_failure_names_the_log(builds: dict[str, BuildResult], tmp_path: Path) -> None:
    """A build that fails says so in one line with its log and last lines; nothing is
    cached under its key. (base-files fails at once: its chroot is the cached one.)"""
    broken = tmp_path / "set" / "base-files"
    shutil.copytree(SET / "base-files", broken)
    (broken / "patches/zz-broken.patch").write_text(BROKEN_RULES)
    with (broken / "patches/series").open("a") as series:
        series.write("zz-broken.patch\n")
    cache = BuildCache(default_cache_dir())
    specs = load_package_set(tmp_path / "set", ["base-files"])
    with pytest.raises(BuildError) as caught:
        build_set(specs, cache, DEFAULT_MIRRORS, lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("base-files: dpkg-buildpackage failed (exit 2); log ")
    assert "deliberately broken by a Wellcar test" in message
    log = Path(message.split("log ", 1)[1].split(": ", 1)[0])
    assert log.is_file() and "deliberately broken" in log.read_text()
