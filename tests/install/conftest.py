"""Small real disk images for the installer's fast tests (no image build).

The image has the Flatcar layout of wellcar.disk (GPT made by the project's own writer),
random bytes in USR-A, a real ext4 OEM filesystem (mkfs.ext4) and zeros elsewhere, so
it exercises the zero runs, the held GPTs and the OEM placement; it is released into a
TUF-signed tree with `release create` (disk.img.zst, DIGESTS) like a real build's.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.release.builds import make_build, payload_key, write_sums

from wellcar.disk import DiskLayout, create_disk_image
from wellcar.disk.gpt_image import read_gpt
from wellcar.disk.sizes import MiB
from wellcar.payload.signing import load_signing_key
from wellcar.release.create import ReleaseInputs, create_release
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TrustRepository

LAYOUT = DiskLayout(
    esp_size=1 * MiB,
    bios_boot_size=1 * MiB,
    usr_size=6 * MiB,
    oem_size=4 * MiB,
    oem_config_size=1 * MiB,
    root_size=2 * MiB,
)
VERSION = "4799.2.0"
CHANNEL = "stable"
BOARD = "amd64-usr"


def make_image(path: Path, seed: str = "install-tests") -> Path:
    """A small GPT disk image with data in USR-A and an ext4 OEM."""
    disk = create_disk_image(path, LAYOUT, seed=seed)
    usr_a, oem = disk.partition(3), disk.partition_labelled("OEM")
    data = random.Random(seed).randbytes(usr_a.byte_size - 3 * MiB)
    with path.open("r+b") as image:
        image.seek(usr_a.byte_offset)
        image.write(data)
    blocks = oem.byte_size // 4096
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "OEM", "-b", "4096", "-E",
         f"offset={oem.byte_offset},root_owner=0:0", str(path), str(blocks)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert not read_gpt(path).needs_repair  # mkfs kept to its partition
    return path


@dataclass(frozen=True)
class Release:
    tree: Path
    image: Path  # the raw disk.img that was released
    trust_root: Path  # the tree's first root.json (what an image would ship)
    payload_public: Path

    @property
    def version_dir(self) -> Path:
        return self.tree / CHANNEL / BOARD / VERSION


def release_image(base: Path, image: Path, version: str = VERSION) -> Release:
    tree, keys = base / "tree", base / "keys"
    if not (tree / "metadata").is_dir():
        TrustRepository.initialize(tree, keys)
    private, public = payload_key(base / "payload-keys")
    build = make_build(base / f"build-{version}", version, extra=())
    try:  # a GB-sized build image is linked, not copied
        (build / "disk.img").hardlink_to(image)
    except OSError:
        shutil.copyfile(image, build / "disk.img")
    write_sums(build, ["update.payload", "packages.txt", "version.txt", "disk.img"])
    inputs = ReleaseInputs(payload_keys=[load_signing_key(private)],
                           tuf_keys=Keyring.load([keys]))  # fmt: skip
    create_release(tree, build, CHANNEL, inputs)
    return Release(tree, image, tree / "metadata" / "1.root.json", public)


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Release:
    base = tmp_path_factory.mktemp("released")
    return release_image(base, make_image(base / "disk.img"))


@pytest.fixture
def target_file(tmp_path: Path) -> Path:
    """A 'disk' file larger than the image, full of old data (an earlier install)."""
    path = tmp_path / "target.img"
    size = LAYOUT.default_disk_size() + 8 * MiB
    path.write_bytes(b"\xa5" * size)
    return path


def needs_root_and_loop() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices and mounts need root")
    if shutil.which("losetup") is None:
        pytest.skip("losetup is missing")


@pytest.fixture
def loop_target(tmp_path: Path) -> Iterator[Path]:
    """A loop device over a file larger than the image (a real block device)."""
    needs_root_and_loop()
    backing = tmp_path / "loop-backing.img"
    backing.write_bytes(b"\x5a" * (LAYOUT.default_disk_size() + 16 * MiB))
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    try:
        yield Path(device)
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)
