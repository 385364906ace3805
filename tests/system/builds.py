"""Real OS builds shared by the system tests: built once per test session.

Version N has libssl3 from bookworm (3.0.20), N+1 the security update (3.0.22): one package
upgraded, everything else pinned by the mirror. openssl (the same source) is held at the
old version in both, so exactly one package differs. Both are built as `wellcar build`
with no key builds: with a development key set (wellcar.image.dev_keys), made for the
session in its own directory; the images trust its payload key and ship its TUF root, and
the VM test releases into its release tree.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from wellcar.image import BuildResult, ToolError, build, resolve_settings
from wellcar.image.dev_keys import DevKeys, with_dev_keys
from wellcar.image.esp import SYSTEMD_BOOT

VERSION_N = "4893.0.0"
VERSION_N1 = "4893.0.1"
OLD_LIBSSL = "3.0.20-1~deb12u2"
NEW_LIBSSL = "3.0.22-1~deb12u2"
HELD = ("openssl=3.0.20-1~deb12u2",)
BUILD_TOOLS = ("mmdebstrap", "mkfs.erofs", "veritysetup", "mkfs.vfat", "mcopy", "mkfs.ext4",
               "apt-cache", "sfdisk", "unshare")  # fmt: skip


def package_cache() -> Path:
    # Shared across runs on purpose (outside the repository and tmp_path).
    path = Path(os.environ.get("WELLCAR_PACKAGE_CACHE", Path.home() / ".cache/wellcar/packages"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def skip_unless_can_build() -> None:
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"image builds need {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("mmdebstrap --mode=root needs root")
    if not SYSTEMD_BOOT.is_file():
        pytest.skip("systemd-boot-efi is not installed")


@dataclass(frozen=True)
class OsBuild:
    version: str
    output: Path
    result: BuildResult

    def file(self, name: str) -> Path:
        return self.output / name

    @property
    def version_txt(self) -> dict[str, str]:
        text = self.file("version.txt").read_text()
        return dict(line.split("=", 1) for line in text.split())


@dataclass(frozen=True)
class OsBuilds:
    dev_keys: DevKeys  # what N and N+1 were built with: no key named
    n: OsBuild
    n1: OsBuild

    @property
    def signing_key(self) -> Path:
        return self.dev_keys.signing_key


def build_os(
    version: str, libssl: str, output: Path, dev_keys_dir: Path, *, keep_work: bool = False
) -> OsBuild:
    settings = resolve_settings(
        None,
        {
            "version": version,
            "payload_zstd_level": "3",
            "extra_packages": ",".join((f"libssl3={libssl}", *HELD)),
        },
    )
    settings, _ = with_dev_keys(replace(settings, output=output, package_cache=package_cache(),
                                        dev_keys_dir=dev_keys_dir))  # fmt: skip
    try:
        result = build(settings, keep_work=keep_work)
    except ToolError as exc:
        if exc.step == "rootfs" and re.search(
            r"Temporary failure|Could not resolve|Failed to fetch|Unable to fetch", str(exc)
        ):
            pytest.skip(f"the Debian mirror is unreachable: {exc.output_tail[-300:]}")
        raise
    return OsBuild(version, output, result)


def build_pair(work: Path) -> OsBuilds:
    skip_unless_can_build()
    work.mkdir(parents=True, exist_ok=True)
    dev_keys = DevKeys(work / "dev-keys")  # made by the first build, reused by the second
    n = build_os(VERSION_N, OLD_LIBSSL, work / VERSION_N, dev_keys.directory, keep_work=True)
    n1 = build_os(VERSION_N1, NEW_LIBSSL, work / VERSION_N1, dev_keys.directory)
    return OsBuilds(dev_keys, n, n1)
