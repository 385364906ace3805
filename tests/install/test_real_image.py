"""Issue 14, test 3: `wellcar install` of a real build onto a loop device, from a release
tree served on loopback; then the same tree with its image tampered: refused, and the
target left without a partition table.

Uses the session's shared build N (tests/system/builds.py), released into a copy of
its development key set's TUF tree exactly as `release create` does (disk.img.zst).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.install.conftest import needs_root_and_loop
from tests.system.builds import VERSION_N, OsBuilds
from tests.system.mirror import serve_mirror

from wellcar.disk.errors import NotGptError
from wellcar.disk.gpt_image import read_gpt
from wellcar.image.dev_keys import DevKeys
from wellcar.payload.signing import load_signing_key
from wellcar.release.build_dir import REQUIRED, SUMS, sha256_file
from wellcar.release.create import ReleaseInputs, create_release
from wellcar.trust.keys import Keyring

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CHANNEL = "alpha"  # 4893.0.x
EXTRA_BYTES = 1 << 30  # the disk is larger than the image: the backup GPT must move
CONFIG = b'{"ignition": {"version": "3.4.0"}, "passwd": {"users": [{"name": "installed"}]}}'


@pytest.fixture
def loop_disk(tmp_path: Path, os_builds: OsBuilds) -> Iterator[Path]:
    needs_root_and_loop()
    with attached_loop(tmp_path, os_builds.n.file("disk.img").stat().st_size + EXTRA_BYTES) as dev:
        yield dev


@contextmanager
def attached_loop(tmp_path: Path, size: int) -> Iterator[Path]:
    """A loop device over a sparse file of ``size`` bytes."""
    backing = tmp_path / "disk-backing.img"
    with backing.open("wb") as disk:
        disk.truncate(size)  # sparse: zero runs of the image stay holes
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    try:
        yield Path(device)
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


def release_build(output: Path, keys: DevKeys, work: Path) -> Path:
    """A copy of the key set's TUF tree with the build in ``output`` released into it."""
    tree = work / "release-tree"  # a copy: the session's set stays as the builds made it
    shutil.copytree(keys.release_tree, tree)
    build = work / "build"
    build.mkdir()
    names = [*REQUIRED, "disk.img"]
    for name in names:
        (build / name).hardlink_to(output / name)
    (build / SUMS).write_text("".join(f"{sha256_file(build / n)}  {n}\n" for n in names))
    inputs = ReleaseInputs([load_signing_key(keys.signing_key)], Keyring.load([keys.tuf_keys_dir]))
    create_release(tree, build, CHANNEL, inputs)
    return tree


def _install(
    device: Path, url: str, trust_root: Path, config: Path
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "wellcar.install", "-d", str(device), "-b", url,
            "-C", CHANNEL, "-V", "current", "--trust-root", str(trust_root),
            "-i", str(config)]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def _partition_digest(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as disk:
        disk.seek(offset)
        while size:
            piece = disk.read(min(size, 1 << 20))
            digest.update(piece)
            size -= len(piece)
    return digest.hexdigest()


def test_install_a_real_release_and_refuse_a_tampered_one(
    os_builds: OsBuilds, tmp_path: Path, loop_disk: Path
) -> None:
    install_and_refuse_tampered(os_builds.n.output, VERSION_N, os_builds.dev_keys, tmp_path,
                                loop_disk)  # fmt: skip


def install_and_refuse_tampered(
    output: Path, version: str, keys: DevKeys, tmp_path: Path, loop_disk: Path
) -> None:
    tree = release_build(output, keys, tmp_path)
    image = output / "disk.img"
    config = tmp_path / "config.ign"
    config.write_bytes(CONFIG)
    packed = tree / CHANNEL / "amd64-usr" / version / "disk.img.zst"
    with serve_mirror(tree) as mirror:
        url = f"http://127.0.0.1:{mirror.port}/"
        done = _install(loop_disk, url, keys.trust_root, config)
        assert done.returncode == 0, done.stderr
        assert f"installed {version} onto {loop_disk}" in done.stdout
        assert "verified by signed TUF targets" in done.stdout
        assert f"/{CHANNEL}/amd64-usr/{version}/disk.img.zst from 0" in mirror.served

        installed, built = read_gpt(loop_disk), read_gpt(image)
        assert not installed.needs_repair
        assert installed.header.backup_lba == installed.total_sectors - 1
        assert installed.total_sectors * 512 == image.stat().st_size + EXTRA_BYTES
        assert installed.partitions == built.partitions
        for label in ("USR-A", "EFI-SYSTEM", "ROOT"):
            part = built.partition_labelled(label)
            assert _partition_digest(loop_disk, part.byte_offset, part.byte_size) == (
                _partition_digest(image, part.byte_offset, part.byte_size)
            ), label
        oem = built.partition_labelled("OEM")
        placed = subprocess.run(
            ["debugfs", "-R", "cat /config.ign", f"{loop_disk}?offset={oem.byte_offset}"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        assert placed == CONFIG

        data = bytearray(packed.read_bytes())
        data[len(data) // 3] ^= 0x04  # one bit, same length: only the signed hash can tell
        packed.write_bytes(bytes(data))
        refused = _install(loop_disk, url, keys.trust_root, config)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in refused.stderr
    assert "does not match its sha256 in the signed TUF targets" in lines[-1]
    with pytest.raises(NotGptError):
        read_gpt(loop_disk)
    # Debian's sgdisk finds no table either (it would make a new, empty one).
    table = subprocess.run(["sgdisk", "-p", str(loop_disk)], capture_output=True, text=True)
    assert "Creating new GPT entries in memory" in table.stdout
