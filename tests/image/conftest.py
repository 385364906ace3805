"""Fixtures of the image-build tests: a fake rootfs (no mmdebstrap) and fast settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from wellcar.disk.sizes import MiB
from wellcar.image.settings import BrandProfile, BuildSettings
from wellcar.image.version import OsVersion
from wellcar.payload.signing import KeyAlgorithm, generate_key, write_key_pair

DPKG_STATUS = """\
Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u10

Package: systemd
Status: install ok installed
Architecture: amd64
Version: 252.36-1~deb12u1

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def needs_tools(*names: str) -> pytest.MarkDecorator:
    missing = [name for name in names if shutil.which(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def make_fake_rootfs(root: Path) -> Path:
    """A tiny tree shaped like a Debian merged-/usr rootfs, Debian's branding included, so
    the tests can check the build replaces it."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/python3.11").mkdir(parents=True)  # the image python3 ABI check
    (root / "usr/share/doc/base-files").mkdir(parents=True)
    (root / "usr/bin/hello").write_text("#!/bin/sh\necho hello\n")
    (root / "usr/bin/hello").chmod(0o755)
    (root / "usr/share/doc/base-files/copyright").write_text("Debian copyright\n")
    (root / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    (root / "usr/lib/big.bin").write_bytes(os.urandom(3 * 4096 + 17))
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "usr/sbin")):
        (root / link).symlink_to(target)
    etc = root / "etc"
    (etc / "update-motd.d").mkdir(parents=True)
    (etc / "os-release").symlink_to("../usr/lib/os-release")
    (etc / "issue").write_text("Debian GNU/Linux 12 \\n \\l\n\n")
    (etc / "motd").write_text("The programs included with the Debian GNU/Linux system...\n")
    (etc / "update-motd.d/10-uname").write_text("#!/bin/sh\nuname -snrvm\n")
    (etc / "hostname").write_text("localhost\n")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    (root / "home").mkdir()
    (root / "root").mkdir(mode=0o700)
    (root / "boot").mkdir()
    (root / "boot/vmlinuz-6.1.0-test-amd64").write_bytes(b"MZ" + os.urandom(64 * 1024))
    (root / "boot/initrd.img-6.1.0-test-amd64").write_bytes(os.urandom(32 * 1024))
    return root


@pytest.fixture
def fake_rootfs(tmp_path: Path) -> Path:
    return make_fake_rootfs(tmp_path / "rootfs")


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A build naming no key creates the development set in the XDG data directory: never
    # the user's in a test.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def make_payload_keys(directory: Path) -> tuple[Path, Path]:
    """(signing key, directory holding its public key) in ``directory``."""
    public_dir = directory / "public"
    public_dir.mkdir(parents=True)
    signing_key = directory / "release.key"
    write_key_pair(generate_key(KeyAlgorithm.ED25519), signing_key, public_dir / "release.pem")
    return signing_key, public_dir


@pytest.fixture
def small_settings(tmp_path: Path) -> BuildSettings:
    # A build must ship a trusted payload key (wellcar.image.dev_keys): these tests name
    # theirs, so none touches the user's development key set.
    signing_key, public_dir = make_payload_keys(tmp_path / "keys")
    return BuildSettings(
        brand=BrandProfile(payload_key_dir=public_dir),
        signing_key=signing_key,
        dev_keys_dir=tmp_path / "dev-keys",
        version=OsVersion(4799, 0, 0),
        output=tmp_path / "out",
        package_cache=tmp_path / "cache",
        usr_size=32 * MiB,
        esp_size=64 * MiB,
        root_size=16 * MiB,
        payload_zstd_level=1,
    )
