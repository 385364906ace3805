"""Real OS builds shared by the system tests: built once per test session.

Version N has libssl3 from bookworm (3.0.20), N+1 the security update (3.0.22): one package
upgraded, everything else pinned by the mirror. openssl (the same source) is held at the
old version in both, so exactly one package differs. Both are signed with a release key
made for the session and trust only that key.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from wellcar.image import BuildResult, ToolError, build, resolve_settings
from wellcar.image.esp import SYSTEMD_BOOT
from wellcar.payload.signing import KeyAlgorithm, generate_key, write_key_pair

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
    signing_key: Path
    key_dir: Path  # the public key, as the image ships it
    n: OsBuild
    n1: OsBuild


def build_os(
    version: str, libssl: str, output: Path, signing_key: Path, key_dir: Path,
    *, keep_work: bool = False,
) -> OsBuild:  # fmt: skip
    settings = resolve_settings(
        None,
        {
            "version": version,
            "payload_zstd_level": "3",
            "extra_packages": ",".join((f"libssl3={libssl}", *HELD)),
        },
    )
    brand = replace(settings.brand, payload_key_dir=key_dir)
    settings = replace(settings, brand=brand, output=output, package_cache=package_cache(),
                       signing_key=signing_key)  # fmt: skip
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
    key_dir = work / "keys"
    key_dir.mkdir(exist_ok=True)
    signing_key = work / "release.key"
    write_key_pair(generate_key(KeyAlgorithm.ED25519), signing_key, key_dir / "release.pem")
    n = build_os(VERSION_N, OLD_LIBSSL, work / VERSION_N, signing_key, key_dir, keep_work=True)
    n1 = build_os(VERSION_N1, NEW_LIBSSL, work / VERSION_N1, signing_key, key_dir)
    return OsBuilds(signing_key, key_dir, n, n1)
