"""The image artifacts a release publishes: one row per file, the one list of them.

Each row names the file ``wellcar build`` (or another step of the build) leaves in the
build directory, the name it has in the release tree's version directory (a TUF target
and a DIGESTS line under that name), and how it is stored there. A build directory may
hold any of them; those it holds must be listed in its SHA256SUMS (build_dir), and are
published when there. Adding an artifact (the live ISO, PXE files, platform images) is
one row here; `release create`, DIGESTS, the TUF targets and the release record follow.

Compressed rows are compressed at release time with the Debian ``zstd`` tool, so the
build directory keeps the raw file (the VM tests and `wellcar vm run` boot it as is).
Readers (`wellcar install`) accept zstd and gzip (:data:`READ_COMPRESSIONS`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from wellcar.image.platforms import platform_release_files
from wellcar.live.artifacts import LIVE_INITRD, LIVE_INSTALL, LIVE_ISO, LIVE_KERNEL, LIVE_USR
from wellcar.release.errors import ReleaseError


class Compression(StrEnum):
    NONE = "none"
    ZSTD = "zstd"
    GZIP = "gzip"

    @property
    def suffix(self) -> str:
        return {Compression.NONE: "", Compression.ZSTD: ".zst", Compression.GZIP: ".gz"}[self]


# What readers of a published image accept (a mirror may recompress with gzip).
READ_COMPRESSIONS = (Compression.ZSTD, Compression.GZIP, Compression.NONE)
# Level 3 (zstd's default): the disk image is mostly an erofs /usr that level 19 shrinks
# by a few percent only, at many times the release time.
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class StreamPlace:
    """Where an artifact appears in a channel's stream feed (release/streams.py), as in
    Fedora CoreOS's stream metadata: ``artifacts.<platform>.formats.<format>.<role>``."""

    platform: str  # "metal", "qemu", "aws", ...
    format: str  # "raw", "iso", "pxe", "qcow2"; the stored compression is appended
    role: str  # "disk"; PXE: "kernel", "initramfs", "rootfs", "install"


@dataclass(frozen=True)
class ImageArtifact:
    build_name: str  # the file in the build directory
    compression: Compression  # how it is stored in the release tree
    what: str  # one line for docs and messages
    stream: StreamPlace | None = None  # None: not an image a user downloads to boot

    @property
    def stream_format(self) -> str | None:
        """The format key in a stream feed: ``raw.zst`` for a zstd-compressed raw image."""
        return self.stream.format + self.compression.suffix if self.stream else None

    @property
    def tree_name(self) -> str:
        """Its name in the version directory: a TUF target and a DIGESTS entry."""
        return self.build_name + self.compression.suffix


METAL = "metal"
DISK_IMAGE = ImageArtifact(
    "disk.img",
    Compression.ZSTD,
    "the whole disk (GPT, ESP, USR-A/B, OEM, ROOT): `wellcar install`",
    StreamPlace(METAL, "raw", "disk"),
)
# The one table. The order is the order of SHA256SUMS hints and docs.
# fmt: off
IMAGE_ARTIFACTS: tuple[ImageArtifact, ...] = (
    DISK_IMAGE,
    ImageArtifact("usr.img", Compression.NONE, "the erofs /usr with its dm-verity hash tree"),
    ImageArtifact("usr.verity", Compression.NONE, "the verity hash tree, when built apart"),
    ImageArtifact("vmlinuz", Compression.NONE, "the kernel"),
    ImageArtifact("initrd.img", Compression.NONE, "the initramfs"),
    # The live media (docs/live.md): compressed inside already, stored as built.
    ImageArtifact(LIVE_ISO, Compression.NONE, "the hybrid live ISO (UEFI; CD and USB stick)",
                  StreamPlace(METAL, "iso", "disk")),
    ImageArtifact(LIVE_KERNEL, Compression.NONE, "PXE: the kernel",
                  StreamPlace(METAL, "pxe", "kernel")),
    ImageArtifact(LIVE_INITRD, Compression.NONE, "PXE: the live initrd (it names the /usr hash)",
                  StreamPlace(METAL, "pxe", "initramfs")),
    ImageArtifact(LIVE_USR, Compression.NONE, "PXE: /usr as an initrd archive",
                  StreamPlace(METAL, "pxe", "rootfs")),
    ImageArtifact(LIVE_INSTALL, Compression.NONE, "PXE: the install image as an initrd archive",
                  StreamPlace(METAL, "pxe", "install")),
    # Platform images (`wellcar build --platform`): one row per file. The metal platform's
    # raw image has the same place as disk.img; a stream lists the first row it finds there.
    *(
        ImageArtifact(f.build_name, Compression.ZSTD if f.compress else Compression.NONE, f.what,
                      StreamPlace(f.platform, f.format,
                                  "descriptor" if f.format == "ovf" else "disk"))
        for f in platform_release_files()
    ),
)
# fmt: on


def artifact_for_build_name(name: str) -> ImageArtifact:
    for artifact in IMAGE_ARTIFACTS:
        if artifact.build_name == name:
            return artifact
    raise KeyError(name)


def artifact_for_tree_name(name: str) -> ImageArtifact | None:
    for artifact in IMAGE_ARTIFACTS:
        if artifact.tree_name == name:
            return artifact
    return None


def publish_artifact(artifact: ImageArtifact, source: Path, destination_dir: Path) -> Path:
    """Put the build's file into a version directory under its tree name, stored as the
    table says. Returns the written path."""
    destination = destination_dir / artifact.tree_name
    if artifact.compression is Compression.NONE:
        shutil.copyfile(source, destination)
        return destination
    if artifact.compression is Compression.ZSTD:
        argv = ["zstd", "-q", f"-{ZSTD_LEVEL}", "-T0", "--no-progress", "-f", str(source),
                "-o", str(destination)]  # fmt: skip
    else:
        raise ReleaseError(f"{artifact.tree_name}: releases store zstd, not {artifact.compression}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ReleaseError(
            f"cannot compress {artifact.build_name}: the zstd tool is missing "
            "(apt-get install zstd)"
        ) from None
    if done.returncode != 0:
        raise ReleaseError(f"zstd could not compress {source}: {done.stderr.strip()[-300:]}")
    return destination
