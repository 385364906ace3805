"""Per-platform images from one finished build (``wellcar build --platform P``).

Works on a build's output directory (``disk.img``, ``version.txt``) without rebuilding
the OS: the disk is copied (sparse), its OEM partition is written with the platform's
files (wellcar.image.platforms.oem_files), its boot entries get the platform's command
line, and the result is converted and checked (wellcar.image.disk_formats). Outputs go
next to the build's files under the names ``platform_files`` gives
(``platform-aws.raw``, ...), and are added to the build's ``SHA256SUMS`` (a build
directory lists every file it holds), so a release publishes them (release.image_artifacts).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import UUID

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import DiskError, read_gpt
from wellcar.disk.boot_entries import (
    GRUB_CFG,
    LOADER_ENTRIES,
    entry_file_brand,
    grub_cfg_for_entry_files,
    parse_boot_entry,
    render_boot_entry,
)

from .disk_formats import ConvertedImage, convert
from .errors import ImageContentError, ToolError
from .filesystems import make_ext4
from .platforms import (
    Platform,
    oem_files,
    platform_files,
    platform_kernel_arguments,
    platform_options,
)
from .tools import run_tool

STEP = "platform"
SUMS = "SHA256SUMS"
CHUNK = 1 << 20
EXT4_UUID_OFFSET = 1024 + 0x68  # superblock at 1 KiB, s_uuid at 0x68
# Reported per platform: (platform name, index from 0, number of platforms).
PlatformCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PlatformImage:
    platform: Platform
    image: ConvertedImage
    seconds: float  # from the build's disk.img to the checked output

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.image.path, *self.image.extra)


@dataclass(frozen=True)
class BuildInfo:
    version: str
    epoch: int


def read_build_info(build_dir: Path) -> BuildInfo:
    """Version and SOURCE_DATE_EPOCH from a build's version.txt (keys under the brand's
    prefix, as wellcar.image.build.render_version_txt writes them)."""
    path = build_dir / "version.txt"
    if not (build_dir / "disk.img").is_file() or not path.is_file():
        raise ImageContentError(STEP, f"{build_dir} is not a finished build (no disk.img "
                                "or version.txt)")  # fmt: skip
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        values[key.split("_", 1)[-1]] = value.strip().strip('"')
    try:
        return BuildInfo(values["VERSION"], int(values["SOURCE_DATE_EPOCH"]))
    except (KeyError, ValueError):
        raise ImageContentError(STEP, f"{path} lacks _VERSION= or _SOURCE_DATE_EPOCH=") from None


def _mtools(image_at: str) -> tuple[list[str], dict[str, str]]:
    return ["-i", image_at], {"MTOOLS_SKIP_CHECK": "1"}


def rewrite_boot_entries(disk: Path, esp_offset: int, extra: tuple[str, ...], work: Path,
                         log: Path | None) -> list[str]:  # fmt: skip
    """Every boot entry in the ESP (inside ``disk`` at ``esp_offset``) read and written
    back through the boot contract with the platform's words; the new command lines."""
    image, env = _mtools(f"{disk}@@{esp_offset}")
    names = run_tool(STEP, ["mdir", "-b", *image, f"::/{LOADER_ENTRIES}"], log=log, env=env)
    lines = []
    written: list[Path] = []
    for entry in sorted(n.strip() for n in names.splitlines() if n.strip().endswith(".conf")):
        name = entry.rsplit("/", 1)[-1]
        text = run_tool(STEP, ["mtype", *image, f"::/{LOADER_ENTRIES}/{name}"], log=None, env=env)
        try:
            parsed = parse_boot_entry(text)
            rewritten = replace(parsed, options=platform_options(parsed.options, extra))
            new_text = render_boot_entry(rewritten)
        except DiskError as exc:
            raise ImageContentError(STEP, f"boot entry {name}: {exc}") from exc
        lines.append(" ".join(rewritten.options))
        local = work / name
        local.write_text(new_text, encoding="utf-8")
        written.append(local)
        run_tool(STEP, ["mcopy", "-o", *image, str(local), f"::/{LOADER_ENTRIES}/{name}"],
                 log=log, env=env)  # fmt: skip
    if not lines:
        raise ImageContentError(STEP, f"no boot entry in {disk}")
    # BIOS machines boot GRUB, whose config is rendered from the same entries.
    texts = {path.name: path.read_text(encoding="utf-8") for path in written}
    brands = {entry_file_brand(name) for name in texts} - {None}
    if len(brands) == 1:
        grub_cfg = grub_cfg_for_entry_files(brands.pop() or "", texts)
        if grub_cfg is not None:
            local = work / "grub.cfg"
            local.write_text(grub_cfg, encoding="utf-8")
            run_tool(STEP, ["mcopy", "-o", *image, str(local), f"::/{GRUB_CFG}"], log=log, env=env)
    return lines


def _ext4_uuid(disk: Path, offset: int) -> UUID:
    with disk.open("rb") as f:
        f.seek(offset + EXT4_UUID_OFFSET)
        return UUID(bytes=f.read(16))


def write_oem(disk: Path, platform: Platform, info: BuildInfo, work: Path,
              log: Path | None) -> None:  # fmt: skip
    """A new OEM ext4 (same UUID and label as the build's) holding the platform's files."""
    try:
        part = read_gpt(disk).partition_labelled("OEM")
    except DiskError as exc:
        raise ImageContentError(STEP, str(exc)) from exc
    tree = work / "oem"
    tree.mkdir()
    for name, text in oem_files(platform, info.version).items():
        (tree / name).write_text(text, encoding="utf-8")
        os.utime(tree / name, (info.epoch, info.epoch))
    os.utime(tree, (info.epoch, info.epoch))
    image = work / "oem.img"
    make_ext4(image, part.byte_size, label="OEM", fs_uuid=_ext4_uuid(disk, part.byte_offset),
              epoch=info.epoch, source=tree, log=log)  # fmt: skip
    # The old OEM's blocks become holes, then only the new file system's data is written:
    # the platform image stays as sparse as the build's.
    try:
        run_tool(STEP, ["fallocate", "--punch-hole", "--offset", str(part.byte_offset),
                        "--length", str(part.byte_size), str(disk)], log=log)  # fmt: skip
        punched = True
    except ToolError:  # a file system without hole punching: write the zeros too
        punched = False
    with image.open("rb") as src, disk.open("r+b") as dst:
        position = part.byte_offset
        while chunk := src.read(CHUNK):
            if not punched or chunk.count(0) != len(chunk):
                dst.seek(position)
                dst.write(chunk)
            position += len(chunk)


def make_platform_raw(build_dir: Path, platform: Platform, raw: Path, *, info: BuildInfo,
                      log: Path | None = None) -> None:  # fmt: skip
    """The build's disk.img as ``raw`` with the platform's OEM content and command line
    (what every format is then converted from; the system tests boot it as it is)."""
    work = raw.parent / f".work-{raw.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        run_tool(STEP, ["cp", "--sparse=always", "--reflink=auto", str(build_dir / "disk.img"),
                        str(raw)], log=log)  # fmt: skip
        write_oem(raw, platform, info, work, log)
        try:
            esp = read_gpt(raw).partition_labelled("EFI-SYSTEM")
        except DiskError as exc:
            raise ImageContentError(STEP, str(exc)) from exc
        rewrite_boot_entries(raw, esp.byte_offset, platform_kernel_arguments(platform), work,
                             log)  # fmt: skip
    except BaseException:
        raw.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_platform_image(build_dir: Path, platform: Platform, *, log: Path | None = None,
                        info: BuildInfo | None = None) -> PlatformImage:  # fmt: skip
    started = time.perf_counter()
    info = info or read_build_info(build_dir)
    work = build_dir / f".platform-work-{platform.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    names = platform_files(platform)
    try:
        raw = work / f"{platform.name}.raw"
        make_platform_raw(build_dir, platform, raw, info=info, log=log)
        converted = convert(
            raw, build_dir / names[0], platform.image_format,
            name=f"{platform.name}-{info.version}", log=log,
            ovf=build_dir / names[1] if len(names) > 1 else None,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PlatformImage(platform, converted, time.perf_counter() - started)


def _sha256(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def add_to_sums(build_dir: Path, files: Sequence[Path]) -> None:
    """List ``files`` in the build's SHA256SUMS (``HASH  NAME`` lines, as the build writes
    them), replacing their earlier lines; the build's own lines stay as they were."""
    sums = build_dir / SUMS
    names = {path.name for path in files}
    kept = [
        line
        for line in sums.read_text(encoding="utf-8").splitlines()
        if line.strip() and line.split(None, 1)[-1].lstrip("*") not in names
    ]
    added = [f"{_sha256(path)}  {path.name}" for path in files]
    write_file_atomically(sums, "".join(f"{line}\n" for line in [*kept, *added]))


def make_platform_images(
    build_dir: Path,
    platforms: Sequence[Platform],
    *,
    on_platform: PlatformCallback | None = None,
    log: Path | None = None,
) -> list[PlatformImage]:
    """All of ``platforms`` from one build, each then listed in the build's SHA256SUMS."""
    info = read_build_info(build_dir)
    if not (build_dir / SUMS).is_file():
        raise ImageContentError(STEP, f"{build_dir} has no {SUMS}: the build did not finish")
    made = []
    for index, platform in enumerate(platforms):
        if on_platform is not None:
            on_platform(platform.name, index, len(platforms))
        image = make_platform_image(build_dir, platform, log=log, info=info)
        add_to_sums(build_dir, image.files)
        made.append(image)
    return made
