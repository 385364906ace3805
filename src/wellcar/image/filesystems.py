"""Making the small filesystems of the disk (FAT32 ESP, ext4 ROOT and OEM) in plain files.

Everything works on image files with userspace tools (mkfs.vfat + mtools, mkfs.ext4 -d),
so the build needs neither loop devices nor mounts. Volume ids, UUIDs, hash seeds and
timestamps are fixed so the same inputs give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from .tools import run_tool


def _mtools_env(epoch: int) -> dict[str, str]:
    # mtools (>= 4.0.30) stamps new directories and entries with SOURCE_DATE_EPOCH.
    return {"MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(epoch)}


def _sized_file(path: Path, size: int) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as out:
        out.truncate(size)


def make_vfat(path: Path, size: int, *, label: str, volume_id: str, log: Path | None) -> None:
    """FAT32 with one sector per cluster, so even a 64 MiB ESP has the 65525 clusters
    FAT32 needs."""
    _sized_file(path, size)
    run_tool(
        "esp",
        ["mkfs.vfat", "-F", "32", "-s", "1", "--invariant", "-i", volume_id, "-n", label,
         str(path)],
        log=log,
    )  # fmt: skip


def fat_mkdirs(image: Path, directories: Sequence[str], *, epoch: int, log: Path | None) -> None:
    if directories:
        run_tool("esp", ["mmd", "-i", str(image), *(f"::/{d}" for d in directories)],
                 log=log, env=_mtools_env(epoch))  # fmt: skip


def fat_copy(image: Path, source: Path, target: str, *, epoch: int, log: Path | None) -> None:
    """Copy one file into the FAT image, with its mtime set to ``epoch`` (mcopy -m keeps
    the source's mtime, which would otherwise be the build time)."""
    os.utime(source, (epoch, epoch))
    run_tool("esp", ["mcopy", "-o", "-m", "-i", str(image), str(source), f"::/{target}"],
             log=log, env=_mtools_env(epoch))  # fmt: skip


def make_ext4(
    path: Path,
    size: int,
    *,
    label: str,
    fs_uuid: UUID,
    epoch: int,
    source: Path | None,
    log: Path | None,
) -> None:
    """ext4 filled from ``source`` (``mkfs.ext4 -d``). ``root_owner`` makes the root
    directory root's whatever user runs the build; ``hash_seed`` and the UUID fix what
    mke2fs would otherwise randomise, E2FSPROGS_FAKE_TIME the superblock times."""
    _sized_file(path, size)
    argv = [
        "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", label, "-U", str(fs_uuid),
        "-E", f"root_owner=0:0,hash_seed={fs_uuid}",
    ]  # fmt: skip
    if source is not None:
        argv += ["-d", str(source)]
    run_tool("ext4", [*argv, str(path)], log=log, env={"E2FSPROGS_FAKE_TIME": str(epoch)})
    if source is not None:
        _fix_ctimes(path, source, epoch, log)


def _fix_ctimes(image: Path, source: Path, epoch: int, log: Path | None) -> None:
    """mkfs.ext4 -d copies each file's ctime and atime, which no one can set on the source tree (it
    is when the build wrote the file); rewrite it with debugfs so the image is
    reproducible. One debugfs run for all paths: a few thousand in a real /etc and /var."""
    lines = ["/"]
    for directory, dirnames, filenames in os.walk(source):
        for name in sorted([*dirnames, *filenames]):
            lines.append("/" + str(Path(directory, name).relative_to(source)))
    script = image.with_name(image.name + ".debugfs")
    script.write_text(
        "".join(
            f'sif "{path}" {field} @{epoch}\n'
            for path in lines
            if '"' not in path
            for field in ("ctime", "atime")  # reading the tree updated directory atimes
        ),
        encoding="utf-8",
    )
    try:
        run_tool("ext4", ["debugfs", "-w", "-f", str(script), str(image)], log=None,
                 env={"E2FSPROGS_FAKE_TIME": str(epoch)})  # fmt: skip
    finally:
        script.unlink(missing_ok=True)


def clamp_mtimes(tree: Path, epoch: int) -> None:
    """Set every mtime and atime under ``tree`` to ``epoch``: mkfs.ext4 -d and mkfs.erofs
    copy them into the inodes (mkfs.erofs -T clamps only newer ones), and the build's own
    writes (branding, dpkg, initrd hooks) would make them vary."""
    for directory, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            os.utime(Path(directory, name), (epoch, epoch), follow_symlinks=False)
    os.utime(tree, (epoch, epoch))
