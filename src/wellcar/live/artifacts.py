"""The live artifacts, made from a build's outputs: PXE files and the hybrid ISO.

From ``vmlinuz``, ``initrd.img`` (which carries the live boot script, see
``boot_scripts``), ``usr.img``, ``disk.img`` and ``version.txt``:

| file | what |
|---|---|
| ``live.vmlinuz`` | the kernel (the build's, unchanged) |
| ``live-initrd.img`` | the build's initrd + an archive with the /usr verity root hash |
| ``live-usr.cpio.zst`` | /usr as an initrd archive (zstd, the kernel unpacks it) |
| ``live-install.cpio`` | the install image (``disk.img`` zstd) as an initrd archive |
| ``live.iso`` | all of the above on a UEFI hybrid ISO (CD and USB) |

A PXE machine boots ``live.vmlinuz`` with ``live-initrd.img`` and ``live-usr.cpio.zst``
(or with ``wellcar.live.usr=URL`` of a ``usr.img`` instead of the second archive).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .boot_scripts import INSTALL_DIR, INSTALL_IMAGE, USR_FILE, VERITY_FILE
from .cpio import Member, write_cpio
from .errors import ArtifactBuildError

LIVE_KERNEL = "live.vmlinuz"
LIVE_INITRD = "live-initrd.img"
LIVE_USR = "live-usr.cpio.zst"
LIVE_INSTALL = "live-install.cpio"
LIVE_ISO = "live.iso"
# The files a build with live artifacts adds, in SHA256SUMS order.
LIVE_FILES: tuple[str, ...] = (LIVE_KERNEL, LIVE_INITRD, LIVE_USR, LIVE_INSTALL, LIVE_ISO)
BUILD_INPUTS: tuple[str, ...] = ("vmlinuz", "initrd.img", "usr.img", "disk.img", "version.txt")


@dataclass(frozen=True)
class LiveInputs:
    """What the live artifacts are made of: a build directory's files and facts."""

    kernel: Path
    initrd: Path
    usr: Path
    disk: Path
    version: str
    usrhash: str
    usroffset: int
    epoch: int

    @classmethod
    def from_build_dir(cls, build: Path) -> LiveInputs:
        missing = [name for name in BUILD_INPUTS if not (build / name).is_file()]
        if missing:
            raise ArtifactBuildError(f"{build} has no {', '.join(missing)} (not a finished build)")
        values = dict(
            line.split("=", 1)
            for line in (build / "version.txt").read_text(encoding="utf-8").splitlines()
            if "=" in line
        )

        def value(suffix: str) -> str:
            for key, found in values.items():
                if key.endswith(suffix):
                    return found.strip('"')
            raise ArtifactBuildError(f"{build}/version.txt has no *{suffix}")

        try:
            offset, epoch = int(value("_USR_HASH_OFFSET")), int(value("_SOURCE_DATE_EPOCH"))
        except ValueError:
            raise ArtifactBuildError(f"{build}/version.txt: bad offset or epoch") from None
        return cls(
            kernel=build / "vmlinuz",
            initrd=build / "initrd.img",
            usr=build / "usr.img",
            disk=build / "disk.img",
            version=value("_VERSION"),
            usrhash=value("_USR_ROOT_HASH"),
            usroffset=offset,
            epoch=epoch,
        )


def render_verity_file(usrhash: str, usroffset: int) -> str:
    """``usr.verity``, sourced by the live boot script."""
    if not all(c in "0123456789abcdef" for c in usrhash) or not usrhash:
        raise ArtifactBuildError(f"{usrhash!r} is not a verity root hash")
    return f"USRHASH={usrhash}\nUSROFFSET={usroffset}\n"


def write_live_initrd(inputs: LiveInputs, out: Path) -> None:
    """The build's initrd followed by the archive with the verity root hash: the trusted
    part of a live boot (it says which /usr to accept)."""
    verity = render_verity_file(inputs.usrhash, inputs.usroffset).encode()
    with out.open("wb") as sink:
        with inputs.initrd.open("rb") as src:
            shutil.copyfileobj(src, sink, 4 << 20)
        sink.write(b"\0" * ((-sink.tell()) % 512))
        write_cpio(sink, [Member(VERITY_FILE, data=verity)], mtime=inputs.epoch)


def write_compressed_cpio(members: list[Member], out: Path, level: int, epoch: int) -> None:
    """One archive through ``zstd`` (the kernel's initramfs unpacker reads zstd)."""
    if shutil.which("zstd") is None:
        raise ArtifactBuildError("the zstd tool is missing (apt-get install zstd)")
    with out.open("wb") as sink:
        process = subprocess.Popen(
            ["zstd", "-q", f"-{level}", "-T0", "--no-progress", "-c", "-"],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.PIPE,
        )
        assert process.stdin is not None and process.stderr is not None
        try:
            write_cpio(process.stdin, members, mtime=epoch)
        except BrokenPipeError:
            pass  # zstd ended early: its status and message say why
        finally:
            process.stdin.close()
        err = process.stderr.read()
        if process.wait() != 0:
            raise ArtifactBuildError(f"zstd failed: {err.decode(errors='replace').strip()[-300:]}")
        sink.write(b"\0" * ((-sink.tell()) % 512))


def write_usr_archive(inputs: LiveInputs, out: Path, level: int) -> None:
    write_compressed_cpio([Member(USR_FILE, source=inputs.usr)], out, level, inputs.epoch)


def write_install_archive(inputs: LiveInputs, out: Path, level: int, work: Path) -> None:
    """``disk.img`` compressed as ``wellcar install -f`` reads it, in a plain archive
    (compressing it twice gains nothing)."""
    work.mkdir(parents=True, exist_ok=True)
    image = work / INSTALL_IMAGE
    done = subprocess.run(
        ["zstd", "-q", f"-{level}", "-T0", "--no-progress", "-f", str(inputs.disk), "-o",
         str(image)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ArtifactBuildError(f"zstd could not compress {inputs.disk}: {done.stderr[-300:]}")
    with out.open("wb") as sink:
        write_cpio(sink, [Member(f"{INSTALL_DIR}/{INSTALL_IMAGE}", source=image)],
                   mtime=inputs.epoch)  # fmt: skip
    image.unlink()


@dataclass(frozen=True)
class LiveArtifacts:
    kernel: Path
    initrd: Path
    usr: Path
    install: Path
    iso: Path | None

    def files(self) -> list[Path]:
        found = [self.kernel, self.initrd, self.usr, self.install]
        return found + ([self.iso] if self.iso is not None else [])


def build_pxe(inputs: LiveInputs, out: Path, *, zstd_level: int, work: Path) -> LiveArtifacts:
    """The PXE files (the ISO is made of them too)."""
    out.mkdir(parents=True, exist_ok=True)
    kernel = out / LIVE_KERNEL
    shutil.copyfile(inputs.kernel, kernel)
    write_live_initrd(inputs, out / LIVE_INITRD)
    write_usr_archive(inputs, out / LIVE_USR, zstd_level)
    write_install_archive(inputs, out / LIVE_INSTALL, zstd_level, work)
    return LiveArtifacts(kernel, out / LIVE_INITRD, out / LIVE_USR, out / LIVE_INSTALL, None)


def build_live_artifacts(
    inputs: LiveInputs,
    out: Path,
    *,
    brand_id: str = "wellcar",
    title: str = "Wellcar Linux",
    zstd_level: int = 3,
    work: Path,
    log: Path | None = None,
) -> LiveArtifacts:
    """PXE files and the ISO into ``out``."""
    from .iso import IsoInputs, build_iso

    pxe = build_pxe(inputs, out, zstd_level=zstd_level, work=work)
    iso = out / LIVE_ISO
    build_iso(
        IsoInputs(
            brand_id=brand_id, title=f"{title} {inputs.version} (live)", version=inputs.version,
            usrhash=inputs.usrhash, kernel=pxe.kernel, initrds=(pxe.initrd, pxe.usr, pxe.install),
            epoch=inputs.epoch,
        ),
        iso, work=work, log=log,
    )  # fmt: skip
    return LiveArtifacts(pxe.kernel, pxe.initrd, pxe.usr, pxe.install, iso)
