"""The command line on real block devices (loop devices, root): one `error:` line and
exit status 1 for every refusal, the target checks, `-s`, and what the node can run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.test_compat_commands import NOT_ON_THE_NODE, node_site
from tests.install.conftest import CHANNEL, VERSION, Release

from wellcar.disk.gpt_image import read_gpt
from wellcar.install.errors import TargetError
from wellcar.install.smallest_disk import choose_smallest
from wellcar.install.target import check_target, running_disks

SRC = Path(__file__).resolve().parents[2] / "src"


def wellcar_install(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "wellcar.install", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_command_installs_onto_a_loop_device(released: Release, loop_target: Path) -> None:
    done = wellcar_install("-d", loop_target, "-b", released.tree, "-C", CHANNEL,
                           "--trust-root", released.trust_root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"installed {VERSION} onto {loop_target}: ")
    disk = read_gpt(loop_target)
    assert not disk.needs_repair and disk.header.backup_lba == disk.total_sectors - 1
    # The same flags by their long names, and a version given explicitly.
    done = wellcar_install("--device", loop_target, "--base-url", released.tree,
                           "--channel", CHANNEL, "--version", VERSION, "--board", "amd64-usr",
                           "--trust-root", released.trust_root, "--oem-id", "metal")  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_bad_targets_are_refused_in_one_line(
    released: Release, loop_target: Path, tmp_path: Path
) -> None:
    common = ("-b", released.tree, "--trust-root", released.trust_root)
    line = one_error_line(wellcar_install("-d", "/etc/hostname", *common))
    assert line == (
        "error: /etc/hostname is not a block device: give a whole disk such as /dev/sda or "
        "/dev/nvme0n1 (`lsblk` lists them)"
    )
    line = one_error_line(wellcar_install("-d", tmp_path / "sdz", *common))
    assert "no such device" in line
    # A mounted disk.
    subprocess.run(["mkfs.ext4", "-q", "-F", str(loop_target)], check=True, capture_output=True)
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", str(loop_target), str(mount_point)], check=True)
    try:
        line = one_error_line(wellcar_install("-d", loop_target, *common))
        assert line == (
            f"error: {loop_target} holds {mount_point} (mounted): unmount it first "
            f"(`umount {mount_point}`)"
        )
        with loop_target.open("rb") as disk:  # the mounted filesystem is untouched
            disk.seek(1024 + 56)
            assert disk.read(2) == b"\x53\xef"  # ext4's superblock magic
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    # An invalid config is refused before the disk is looked at twice.
    config = tmp_path / "bad.ign"
    config.write_text("{not json")
    line = one_error_line(wellcar_install("-d", loop_target, "-i", config, *common))
    assert "the Ignition config is not valid" in line
    # No tree at all.
    line = one_error_line(wellcar_install("-d", loop_target, "--trust-root", released.trust_root))
    assert "no release tree: pass -b" in line


def test_a_partition_is_refused(released: Release, loop_target: Path) -> None:
    """After an install, with the kernel's view of the partitions: -d PARTITION says
    which disk to give instead."""
    done = wellcar_install("-d", loop_target, "-b", released.tree, "--trust-root",
                           released.trust_root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    added = subprocess.run(["partx", "--add", str(loop_target)], capture_output=True, text=True)
    partition = Path(f"{loop_target}p3")
    if added.returncode != 0 or not partition.exists():
        pytest.skip(f"this kernel shows no partitions of loop devices ({added.stderr.strip()})")
    try:
        with pytest.raises(TargetError, match=rf"is a partition of /dev/{loop_target.name}"):
            check_target(partition)
    finally:
        subprocess.run(["partx", "--delete", str(loop_target)], check=False, capture_output=True)


def test_the_disk_the_system_runs_from_is_refused() -> None:
    """check_target only looks: it is safe to ask about the real system disk."""
    disks = running_disks()
    if not disks:
        pytest.skip("the root filesystem is not on a block device here")
    name, shown = next(iter(disks.items()))
    if not Path(f"/dev/{name}").exists():
        pytest.skip(f"/dev/{name} is not there")
    with pytest.raises(TargetError, match=r"holds /|which this install runs from"):
        check_target(Path(f"/dev/{name}"))
    assert shown in ("/", "/usr", "/boot", "/oem")


def test_smallest_unused_disk() -> None:
    document = {
        "blockdevices": [
            {"name": "vda", "path": "/dev/vda", "size": 8 << 30, "type": "disk", "ro": False},
            {"name": "sdb", "path": "/dev/sdb", "size": 20 << 30, "type": "disk", "ro": False},
            {"name": "sdc", "path": "/dev/sdc", "size": 10 << 30, "type": "disk", "ro": False},
            {"name": "sdd", "path": "/dev/sdd", "size": 2 << 30, "type": "disk", "ro": False,
             "children": [{"name": "sdd1", "type": "part"}]},
            {"name": "sr0", "path": "/dev/sr0", "size": 1 << 30, "type": "rom", "ro": True},
            {"name": "sde", "path": "/dev/sde", "size": 1 << 30, "type": "disk", "ro": True},
        ]
    }  # fmt: skip
    assert choose_smallest(document, running={"vda"}) == Path("/dev/sdc")
    with pytest.raises(TargetError) as caught:
        choose_smallest(document, running={"vda", "sdb", "sdc"})
    assert str(caught.value) == (
        "-s found no unused disk (vda: the running system is on it; sdb: the running system "
        "is on it; sdc: the running system is on it; sdd: has partitions or holders; "
        "sde: read-only); name one with -d"
    )


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system python3")
def test_an_offline_install_runs_on_the_system_python_with_only_the_node_packages(
    released: Release, loop_target: Path, tmp_path: Path
) -> None:
    """What the live ISO runs: `wellcar install -d DEV -f FILE -i IGN` through the node's
    /usr/bin/wellcar entry (wellcar_main) on Debian's python3, with only the packages
    the image ships (no pydantic, typer, click...), from a copy of the version directory
    (its signed DIGESTS beside the image)."""
    version = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if version != str(sys.version_info[:2]):
        pytest.skip(f"system python3 is {version}; the venv's extensions need the same ABI")
    medium = tmp_path / "medium"
    shutil.copytree(released.version_dir, medium)
    config = tmp_path / "config.ign"
    config.write_text('{"ignition": {"version": "3.4.0"}}')
    site = node_site(tmp_path)
    argv = ["wellcar", "install", "-d", str(loop_target), "-f", str(medium / "disk.img.zst"),
            "-i", str(config), "--trusted-key", str(released.payload_public)]  # fmt: skip
    probe = "\n".join(
        [
            "import sys",
            f"sys.path[:0] = [{str(SRC)!r}, {str(site)!r}]",
            f"sys.argv = {argv!r}",
            "import wellcar.agent.cli",
            "code = wellcar.agent.cli.wellcar_main()",
            f"loaded = sorted(m for m in {NOT_ON_THE_NODE!r} if m in sys.modules)",
            "print('LOADED=' + ','.join(loaded))",
            "sys.exit(code)",
        ]
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", probe],
        capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"installed {VERSION} ({CHANNEL}/amd64-usr) onto {loop_target}" in done.stdout
    assert "verified by signed DIGESTS; placed config.ign on OEM" in done.stdout
    assert "LOADED=\n" in done.stdout  # no pydantic, typer, click, yaml...
    disk = read_gpt(loop_target)
    assert not disk.needs_repair and disk.header.backup_lba == disk.total_sectors - 1
