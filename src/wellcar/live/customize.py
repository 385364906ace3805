"""``wellcar iso customize`` and ``wellcar pxe customize``: embed a live config and,
optionally, an unattended install (device, the installed system's config).

Both write one *customization archive*, an initrd archive (``boot_scripts`` reads it):

- ``wellcar-live/config.ign``: the live system's config (Ignition's OEM source there);
- ``wellcar-live/install/install.env`` and ``install/ignition.ign``: the install.

On the ISO the archive replaces ``custom.cpio`` in the ESP (the boot entry always loads
it; it is empty as built); the ESP is written back where it was, so the rest of the ISO
is unchanged. For PXE the output is the live initrd with the install image archive (when
installing) and the customization archive appended: one initrd to serve.
Every config is validated first; nothing is written when one is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wellcar.ignition.errors import IgnitionError
from wellcar.ignition.parse import parse_config

from .artifacts import LIVE_INSTALL
from .boot_scripts import (
    CONFIG_FILE,
    INSTALL_DIR,
    INSTALL_ENV,
    INSTALL_IGNITION,
    VERITY_FILE,
    render_install_env,
)
from .cpio import Member, cpio_bytes, read_entries
from .errors import CustomizeInputError, LiveError, NotLiveMediaError
from .iso import CUSTOM_LIMIT, MARKER, LiveMarker, find_esp

COPY_CHUNK = 4 << 20
# The live initrd ends with the archive holding the verity file: far less than this.
INITRD_TAIL = 64 << 10


@dataclass(frozen=True)
class Customization:
    live_ignition: bytes
    dest_device: str | None = None
    dest_ignition: bytes | None = None


def _read_config(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CustomizeInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        parse_config(data, origin=str(path))
    except IgnitionError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CustomizeInputError(
            f"{what} {path} is not a valid Ignition config: {first}"
        ) from None
    return data


def load_customization(
    ignition: Path, dest_device: str | None = None, dest_ignition: Path | None = None
) -> Customization:
    """Read and validate the inputs (before anything is written)."""
    live = _read_config(ignition, "--ignition")
    if dest_ignition is not None and dest_device is None:
        raise CustomizeInputError("--dest-ignition needs --dest-device (the disk to install to)")
    if dest_device is not None and (
        not dest_device.startswith("/dev/") or any(c in dest_device for c in " \t\n\"'\\$")
    ):
        raise CustomizeInputError(f"--dest-device {dest_device!r} is not a /dev/ path")
    dest = _read_config(dest_ignition, "--dest-ignition") if dest_ignition is not None else None
    return Customization(live, dest_device, dest)


def customization_archive(custom: Customization) -> bytes:
    members = [Member(CONFIG_FILE, data=custom.live_ignition)]
    if custom.dest_device is not None:
        env = render_install_env(custom.dest_device, custom.dest_ignition is not None)
        members.append(Member(f"{INSTALL_DIR}/{INSTALL_ENV}", data=env.encode()))
        if custom.dest_ignition is not None:
            members.append(Member(f"{INSTALL_DIR}/{INSTALL_IGNITION}", data=custom.dest_ignition))
    return cpio_bytes(members)


def _check_output(out: Path | None) -> None:
    if out is not None and (out.exists() or out.is_symlink()):
        raise CustomizeInputError(f"output {out} exists (give a new file name)")


def _mtools(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    if shutil.which(argv[0]) is None:
        raise LiveError(f"{argv[0]} is not installed (apt-get install mtools)")
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    return subprocess.run(argv, capture_output=True, env=env, check=False)


def _copy_range(src: Path, dst: Path, offset: int, size: int) -> None:
    with src.open("rb") as reader, dst.open("wb") as writer:
        reader.seek(offset)
        left = size
        while left:
            chunk = reader.read(min(COPY_CHUNK, left))
            if not chunk:
                raise NotLiveMediaError(f"{src} is truncated")
            writer.write(chunk)
            left -= len(chunk)


def read_iso_marker(iso: Path) -> LiveMarker:
    """The ``live.json`` of a live ISO (NotLiveMediaError for any other file)."""
    region = find_esp(iso)
    with tempfile.TemporaryDirectory(prefix="wellcar-iso-") as tmp:
        esp = Path(tmp) / "esp.img"
        _copy_range(iso, esp, region.offset, region.size)
        return _marker(esp, iso)


def _marker(esp: Path, iso: Path) -> LiveMarker:
    done = _mtools(["mtype", "-i", str(esp), f"::/{MARKER}"])
    if done.returncode != 0:
        raise NotLiveMediaError(f"{iso} is not a live ISO (no {MARKER} in its ESP)")
    return LiveMarker.parse(done.stdout, str(iso))


def customize_iso(iso: Path, custom: Customization, out: Path | None = None) -> Path:
    """Write the customized ISO to ``out`` (a new file), or change ``iso`` in place.
    Returns the file written."""
    _check_output(out)
    region = find_esp(iso)
    archive = customization_archive(custom)
    if len(archive) > CUSTOM_LIMIT:
        raise CustomizeInputError(
            f"the configs make a {len(archive)}-byte archive; the ISO has room for {CUSTOM_LIMIT}"
        )
    target = out if out is not None else iso
    with tempfile.TemporaryDirectory(prefix="wellcar-iso-", dir=target.parent) as tmp:
        esp = Path(tmp) / "esp.img"
        _copy_range(iso, esp, region.offset, region.size)
        marker = _marker(esp, iso)
        custom_file = Path(tmp) / "custom.cpio"
        custom_file.write_bytes(archive)
        done = _mtools(["mcopy", "-o", "-i", str(esp), str(custom_file),
                        f"::/{marker.custom_archive}"])  # fmt: skip
        if done.returncode != 0:
            raise LiveError(f"cannot write the archive into the ESP: {done.stderr.decode()[-200:]}")
        if out is not None:
            staged = Path(tmp) / "out.iso"
            shutil.copyfile(iso, staged)
            _write_at(staged, esp, region.offset)
            staged.rename(out)
        else:
            _write_at(iso, esp, region.offset)
    return target


def _write_at(target: Path, source: Path, offset: int) -> None:
    with source.open("rb") as reader, target.open("r+b") as writer:
        writer.seek(offset)
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
        writer.flush()
        os.fsync(writer.fileno())


def check_live_initrd(initrd: Path) -> None:
    """A live initrd ends with the archive that holds the /usr verity root hash."""
    try:
        size = initrd.stat().st_size
        with initrd.open("rb") as src:
            src.seek(max(0, size - INITRD_TAIL))
            tail = src.read()
    except OSError as exc:
        raise NotLiveMediaError(f"cannot read {initrd}: {exc.strerror or exc}") from None
    start = tail.rfind(b"070701")
    while start >= 0:
        try:
            if any(e.name == VERITY_FILE for e in read_entries(tail[start:])):
                return
        except LiveError:
            pass
        start = tail.rfind(b"070701", 0, start)
    raise NotLiveMediaError(f"{initrd} is not a live initrd (no {VERITY_FILE} archive at its end)")


def customize_pxe(
    initrd: Path, custom: Customization, out: Path, install_archive: Path | None = None
) -> Path:
    """``out``: ``initrd`` + (when installing) the install image archive + the
    customization archive. ``install_archive`` defaults to ``live-install.cpio`` next to
    ``initrd``."""
    _check_output(out)
    check_live_initrd(initrd)
    parts = [initrd]
    if custom.dest_device is not None:
        install = install_archive or initrd.parent / LIVE_INSTALL
        if not install.is_file():
            raise CustomizeInputError(
                f"an install needs the install image archive: {install} does not exist "
                "(--install-archive)"
            )
        parts.append(install)
    staged = out.with_name(f".{out.name}.partial")
    try:
        with staged.open("wb") as writer:
            for part in parts:
                with part.open("rb") as reader:
                    shutil.copyfileobj(reader, writer, COPY_CHUNK)
                writer.write(b"\0" * ((-writer.tell()) % 512))
            writer.write(customization_archive(custom))
        staged.rename(out)
    finally:
        staged.unlink(missing_ok=True)
    return out
