"""The Ignition config and the OEM id, placed on the installed disk's OEM partition.

The first boot reads ``config.ign`` from the OEM partition (mounted at /oem; see
wellcar.ignition.sources, the last source it tries), so that is where the installer
puts the config given with ``-i``, as flatcar-install does. ``-o ID`` writes
``oem-release`` there (``ID=``, the file the agent reads the OEM id from and reports to
the update server). The partition is reached through a loop device over its byte range
of the target, so this works before the target's partition table is written (the
installer writes that last) and on devices whose partitions the kernel has not scanned.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from wellcar.disk.gpt import Partition
from wellcar.install.errors import PlacementError

CONFIG_NAME = "config.ign"  # wellcar.ignition.sources reads <oem>/config.ign
OEM_RELEASE_NAME = "oem-release"  # wellcar.agent.node_identity reads ID= from it
OEM_LABEL = "OEM"
OEM_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_oem_id(oem_id: str) -> str:
    if not OEM_ID.fullmatch(oem_id):
        raise PlacementError(
            f"-o {oem_id!r}: an OEM id is lowercase letters, digits, '_', '.' or '-' "
            "(e.g. ec2, gce, vmware_raw, metal)"
        )
    return oem_id


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except FileNotFoundError:
        raise PlacementError(f"{what}: {argv[0]} is missing (util-linux)") from None
    if done.returncode != 0:
        raise PlacementError(f"{what}: {' '.join(argv[:2])} failed: {done.stderr.strip()[-200:]}")
    return done.stdout


def _write_private(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, mode)
    temporary.rename(path)


def place_on_oem(
    target: Path, oem: Partition, config: bytes | None, oem_id: str | None
) -> list[str]:
    """Write the config (mode 0600: it may hold secrets) and the OEM id into the OEM
    filesystem at ``oem``'s byte range of ``target``. Returns the names written."""
    if config is None and oem_id is None:
        return []
    loop = _run(
        ["losetup", "--find", "--show", "--offset", str(oem.byte_offset),
         "--sizelimit", str(oem.byte_size), str(target)],
        "attaching the OEM partition",
    ).strip()  # fmt: skip
    written: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="wellcar-install-oem-") as mount_point:
            _run(["mount", "-t", "ext4", loop, mount_point], "mounting the OEM partition")
            try:
                root = Path(mount_point)
                if config is not None:
                    _write_private(root / CONFIG_NAME, config, 0o600)
                    written.append(CONFIG_NAME)
                if oem_id is not None:
                    text = f"ID={oem_id}\nNAME={oem_id}\n".encode()
                    _write_private(root / OEM_RELEASE_NAME, text, 0o644)
                    written.append(OEM_RELEASE_NAME)
            except OSError as exc:
                raise PlacementError(f"writing to the OEM partition failed: {exc}") from None
            finally:
                _run(["umount", mount_point], "unmounting the OEM partition")
    finally:
        _run(["losetup", "--detach", loop], "detaching the OEM partition")
    return written
