"""`wellcar install` on small real images: what is written, and every refusal.

Targets are plain files here (the library's file target) or loop devices (root); trees
are real release trees (`release create`, TUF + DIGESTS), read from the folder or over
a loopback HTTP server.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.install.conftest import BOARD, CHANNEL, LAYOUT, VERSION, Release, needs_root_and_loop
from tests.release.builds import payload_key
from tests.system.mirror import serve_mirror

from wellcar.disk.errors import NotGptError
from wellcar.disk.gpt_image import read_gpt
from wellcar.disk.sizes import MiB
from wellcar.install.errors import (
    IgnitionConfigError,
    SourceError,
    TargetError,
    VerificationError,
)
from wellcar.install.installer import InstallOutcome, InstallRequest, install
from wellcar.install.release_source import ReleaseChoice
from wellcar.install.target import file_target
from wellcar.trust.repository import TrustRepository

CONFIG = b'{"ignition": {"version": "3.4.0"}, "passwd": {"users": [{"name": "core"}]}}'


def _request(release: Release, target: Path, **changes: object) -> InstallRequest:
    fields: dict[str, object] = {
        "target": target,
        "choice": ReleaseChoice(CHANNEL, BOARD, "current"),
        "base_url": str(release.tree),
        "trust_root": release.trust_root,
    }
    fields.update(changes)
    return InstallRequest(**fields)  # type: ignore[arg-type]


def _install(request: InstallRequest) -> InstallOutcome:
    return install(request, target=file_target(request.target))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _oem_file(disk: Path, name: str) -> bytes:
    """A file of the OEM ext4 filesystem, read with debugfs (no mount)."""
    oem = read_gpt(disk).partition_labelled("OEM")
    done = subprocess.run(
        ["debugfs", "-R", f"cat /{name}", f"{disk}?offset={oem.byte_offset}"],
        capture_output=True, check=True,
    )  # fmt: skip
    return done.stdout


def _assert_installed(target: Path, image: Path) -> None:
    """The image's partitions, byte for byte, under a whole GPT ending at the disk's end."""
    disk, source = read_gpt(target), read_gpt(image)
    assert not disk.needs_repair
    assert disk.header.backup_lba == target.stat().st_size // 512 - 1
    assert disk.partitions == source.partitions
    with target.open("rb") as written, image.open("rb") as original:
        for partition in source.partitions:
            if partition.label == "OEM":
                continue  # the config was placed there
            written.seek(partition.byte_offset)
            original.seek(partition.byte_offset)
            assert written.read(partition.byte_size) == original.read(partition.byte_size)


def _assert_no_partition_table(target: Path) -> None:
    with pytest.raises(NotGptError):
        read_gpt(target)
    with target.open("rb") as disk:
        assert disk.read(512) == bytes(512)  # no MBR either


def test_installs_from_a_tuf_tree_over_http(released: Release, target_file: Path) -> None:
    needs_root_and_loop()  # the OEM filesystem is mounted to place the config
    config = target_file.parent / "config.ign"
    config.write_bytes(CONFIG)
    with serve_mirror(released.tree) as mirror:
        outcome = _install(_request(
            released, target_file, base_url=f"http://127.0.0.1:{mirror.port}/",
            ignition=config, oem_id="metal",
        ))  # fmt: skip
        assert f"/{CHANNEL}/{BOARD}/{VERSION}/disk.img.zst from 0" in mirror.served
    assert outcome.version == VERSION
    assert outcome.verified_by == "signed TUF targets"
    assert outcome.image == f"{CHANNEL}/{BOARD}/{VERSION}/disk.img.zst"
    assert outcome.image_bytes == LAYOUT.default_disk_size()
    assert outcome.zeroed_bytes > 0  # zero runs were not written as data
    assert outcome.placed == ["config.ign", "oem-release"]
    _assert_installed(target_file, released.image)
    assert _oem_file(target_file, "config.ign") == CONFIG
    assert b"ID=metal\n" in _oem_file(target_file, "oem-release")


def test_a_tree_without_tuf_is_checked_with_its_signed_digests(
    released: Release, tmp_path: Path, target_file: Path
) -> None:
    tree = tmp_path / "no-tuf"
    shutil.copytree(released.tree, tree, symlinks=True)
    shutil.rmtree(tree / "metadata")
    request = _request(released, target_file, base_url=str(tree), trust_root=None,
                       trusted_keys=(released.payload_public,))  # fmt: skip
    outcome = _install(request)
    assert outcome.verified_by == "signed DIGESTS"
    assert outcome.version == VERSION
    _assert_installed(target_file, released.image)
    # DIGESTS signed by a key not trusted here: refused, disk untouched.
    _, stranger = payload_key(tmp_path / "stranger")
    before = _digest(target_file)
    with pytest.raises(VerificationError, match="no signature verifies"):
        _install(_request(released, target_file, base_url=str(tree), trust_root=None,
                          trusted_keys=(stranger,)))  # fmt: skip
    assert _digest(target_file) == before
    # A tree that has TUF is never read through DIGESTS instead: no root, no install.
    with pytest.raises(SourceError, match="signed with TUF but no trusted root"):
        _install(_request(released, target_file, trust_root=None))


def _tampered_tree(released: Release, tmp_path: Path) -> Path:
    tree = tmp_path / "tampered"
    shutil.copytree(released.tree, tree, symlinks=True)
    packed = tree / CHANNEL / BOARD / VERSION / "disk.img.zst"
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 0x01  # same length, one bit
    packed.write_bytes(bytes(data))
    return tree


def test_a_tampered_image_is_refused_and_the_disk_left_without_a_table(
    released: Release, tmp_path: Path, target_file: Path
) -> None:
    tree = _tampered_tree(released, tmp_path)
    with pytest.raises(VerificationError, match="does not match its sha256 in the signed TUF"):
        _install(_request(released, target_file, base_url=str(tree)))
    _assert_no_partition_table(target_file)
    with target_file.open("rb") as disk:  # the old disk's backup GPT area is gone too
        disk.seek(-MiB, 2)
        assert disk.read(MiB) == bytes(MiB)
    # The same through DIGESTS.
    shutil.rmtree(tree / "metadata")
    with pytest.raises(VerificationError, match="in the signed DIGESTS"):
        _install(_request(released, target_file, base_url=str(tree), trust_root=None,
                          trusted_keys=(released.payload_public,)))  # fmt: skip
    _assert_no_partition_table(target_file)


def test_refusals_before_the_image_leave_the_disk_untouched(
    released: Release, tmp_path: Path, target_file: Path
) -> None:
    before = _digest(target_file)
    bad_config = tmp_path / "bad.ign"
    bad_config.write_text('{"ignition": {"version": "3.4.0"}, "storage": {"files": [{}]}}')
    other_tree, other_keys = tmp_path / "other", tmp_path / "other-keys"
    TrustRepository.initialize(other_tree, other_keys)
    no_image = tmp_path / "no-image"
    shutil.copytree(released.tree, no_image, symlinks=True)
    (no_image / CHANNEL / BOARD / VERSION / "disk.img.zst").unlink()
    small = tmp_path / "small.img"
    small.write_bytes(bytes(LAYOUT.default_disk_size() - MiB))
    cases: list[tuple[InstallRequest, type[Exception], str]] = [
        (_request(released, target_file, ignition=bad_config), IgnitionConfigError,
         "the Ignition config is not valid: "),
        (_request(released, target_file, choice=ReleaseChoice("beta", BOARD, "current")),
         SourceError, "no signed disk image in channel beta for amd64-usr (channels with one: "
         "stable)"),
        (_request(released, target_file, choice=ReleaseChoice(CHANNEL, BOARD, "4799.2.7")),
         SourceError, f"no signed disk image of version 4799.2.7 for amd64-usr (channel stable "
         f"has {VERSION})"),
        (_request(released, target_file, choice=ReleaseChoice(CHANNEL, "arm64-usr", VERSION)),
         SourceError, "no signed disk image of version"),
        (_request(released, target_file, trust_root=other_tree / "metadata/1.root.json"),
         VerificationError, "the release tree's TUF metadata: "),
        (_request(released, target_file, base_url=str(no_image)), SourceError,
         "disk.img.zst: not in the release tree"),
        (_request(released, target_file, base_url="http://127.0.0.1:9/"), SourceError,
         "cannot fetch http://127.0.0.1:9/metadata/timestamp.json: [Errno 111] Connection "
         "refused"),
        (_request(released, target_file, oem_id="Not An Id"), Exception, "an OEM id is"),
        (_request(released, target_file, base_url=str(tmp_path / "nowhere")), SourceError,
         "no such folder"),
    ]  # fmt: skip
    for request, error, message in cases:
        with pytest.raises(error) as caught:
            _install(request)
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)
        assert _digest(target_file) == before, message
    small_before = _digest(small)
    with pytest.raises(TargetError, match=r"too small: .* nothing was written"):
        install(_request(released, small), target=file_target(small))
    assert _digest(small) == small_before


def test_a_truncated_image_is_refused(released: Release, tmp_path: Path, target_file: Path) -> None:
    tree = tmp_path / "truncated"
    shutil.copytree(released.tree, tree, symlinks=True)
    packed = tree / CHANNEL / BOARD / VERSION / "disk.img.zst"
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size * 2 // 3])
    with (
        serve_mirror(tree) as mirror,
        pytest.raises(SourceError, match=r"ended after \d+ of \d+ bytes \(truncated"),
    ):
        _install(_request(released, target_file, base_url=f"http://127.0.0.1:{mirror.port}"))
    _assert_no_partition_table(target_file)


def test_a_local_image_file_installs_without_network(
    released: Release, tmp_path: Path, target_file: Path
) -> None:
    """-f: raw and gzip files unverified (as flatcar-install -f); the release's own
    disk.img.zst with its DIGESTS beside it verified, and refused when changed."""
    raw = tmp_path / "disk.raw"
    shutil.copyfile(released.image, raw)
    gz = tmp_path / "disk.img.gz"
    gz.write_bytes(subprocess.run(["gzip", "-c", str(raw)], capture_output=True,
                                  check=True).stdout)  # fmt: skip
    for image in (raw, gz):
        outcome = _install(_request(released, target_file, base_url=None, image_file=image))
        assert outcome.verified_by.startswith("nothing (an unverified local file")
        _assert_installed(target_file, released.image)
    copy = tmp_path / "medium"
    shutil.copytree(released.version_dir, copy)
    signed = copy / "disk.img.zst"
    outcome = _install(_request(released, target_file, base_url=None, image_file=signed,
                                trusted_keys=(released.payload_public,)))  # fmt: skip
    assert outcome.verified_by == "signed DIGESTS"
    assert outcome.version == f"{VERSION} ({CHANNEL}/{BOARD})"
    with pytest.raises(VerificationError, match="no payload key is known"):
        _install(_request(released, target_file, base_url=None, image_file=signed))
    data = bytearray(signed.read_bytes())
    data[-100] ^= 0x80
    signed.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="does not match its sha256 in the signed DIGESTS"):
        _install(_request(released, target_file, base_url=None, image_file=signed,
                          trusted_keys=(released.payload_public,)))  # fmt: skip
    _assert_no_partition_table(target_file)
