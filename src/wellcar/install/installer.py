"""`wellcar install`, the steps in order (see docs/install.md).

1. Everything checkable without the image: the Ignition config validates, the OEM id is
   well formed, the target is a whole, unused disk that the running system is not on.
2. The image is chosen and its signed description fetched (TUF, else DIGESTS; or a
   local file): unknown channels and versions, 404s and bad signatures stop here.
3. The image streams to the disk without its partition tables (disk_writer), which the
   source's verdict then admits or refuses; refused, the tables are wiped again.
4. Read back and compared; the config and OEM id go onto the OEM partition.
5. The partition tables are written last, the backup one moved to the disk's end, and
   the result read back. Any failure after step 3 began wipes the tables again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wellcar.install.disk_writer import DiskWriter, Progress, StagedImage, wipe_quietly
from wellcar.install.errors import IgnitionConfigError, ImageFormatError, InstallError, SourceError
from wellcar.install.gpt_fixup import move_backup_gpt, tell_the_kernel
from wellcar.install.image_stream import ExpectedImage, ImageStream
from wellcar.install.local_image import expect_local_file
from wellcar.install.oem_partition import OEM_LABEL, check_oem_id, place_on_oem
from wellcar.install.release_source import (
    ReleaseChoice,
    ResolvedImage,
    has_tuf_metadata,
    resolve_with_digests,
    resolve_with_tuf,
)
from wellcar.install.target import Target, check_target, open_exclusive
from wellcar.install.tree_access import TreeLocation

MAX_CONFIG_BYTES = 8 << 20


@dataclass(frozen=True)
class InstallRequest:
    target: Path
    choice: ReleaseChoice
    base_url: str | None = None  # the release tree (URL or folder)
    image_file: Path | None = None  # -f: instead of the tree
    ignition: Path | None = None
    oem_id: str | None = None
    trust_root: Path | None = None  # TUF root.json the tree must chain to
    trusted_keys: tuple[Path, ...] = ()  # payload public keys (DIGESTS)


@dataclass(frozen=True)
class InstallOutcome:
    target: Path
    image: str  # the file installed (target name or path)
    version: str | None
    verified_by: str
    image_bytes: int
    source_bytes: int
    zeroed_bytes: int
    seconds: float
    placed: list[str] = field(default_factory=list)


def read_ignition(path: Path) -> bytes:
    """The config's bytes, if it validates (any Ignition spec Wellcar reads)."""
    from wellcar.ignition.errors import IgnitionError
    from wellcar.ignition.parse import parse_config

    try:
        with path.open("rb") as src:
            data = src.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise IgnitionConfigError(f"-i {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise IgnitionConfigError(f"-i {path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        parse_config(data, str(path))
    except IgnitionError as exc:
        raise IgnitionConfigError(
            f"the Ignition config is not valid: {exc} (`wellcar config validate` lists all)"
        ) from None
    return data


def _resolve(
    request: InstallRequest, location: TreeLocation | None
) -> tuple[ExpectedImage, Callable[[int], Iterator[bytes]], str | None]:
    """The expected image, a way to open its bytes (given a size cap), and its version."""
    if request.image_file is not None:
        path = request.image_file
        expected, identity = expect_local_file(path, list(request.trusted_keys))
        location = TreeLocation(str(path.parent))
        return expected, lambda cap: location.stream(path.name, expected.length or cap), identity
    assert location is not None
    resolved: ResolvedImage
    root = request.trust_root
    if root is not None and not root.is_file():
        raise SourceError(f"--trust-root {root}: no such file (the vendor's TUF root.json)")
    if root is not None and has_tuf_metadata(location):
        resolved = resolve_with_tuf(location, request.choice, root)
    elif request.trusted_keys:
        resolved = resolve_with_digests(location, request.choice, list(request.trusted_keys))
    elif has_tuf_metadata(location):
        raise SourceError(
            f"{location} is signed with TUF but no trusted root is known: pass --trust-root "
            "(the root.json the vendor ships; on a node /usr/share/<brand>/trust/root.json)"
        )
    else:
        raise SourceError(
            f"{location} has no TUF metadata and no payload key is known to check its "
            "DIGESTS: pass --trusted-key (the vendor's payload public key)"
        )
    return resolved.expected, lambda cap: resolved.open(location, cap), resolved.version


def install(
    request: InstallRequest,
    *,
    target: Target | None = None,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> InstallOutcome:
    """Install; raise an InstallError (one line) on any refusal. ``target``: an already
    checked target (tests pass a file target); otherwise ``request.target`` is checked."""
    started = time.monotonic()
    config = read_ignition(request.ignition) if request.ignition is not None else None
    oem_id = check_oem_id(request.oem_id) if request.oem_id is not None else None
    if target is None:
        readers = tuple(p for p in (request.image_file, request.ignition) if p is not None)
        target = check_target(request.target, installer_paths=readers)
    location = TreeLocation(request.base_url) if request.base_url else None
    if location is None and request.image_file is None:
        raise SourceError(
            "no release tree: pass -b with its URL or folder (or -f with an image file)"
        )
    try:
        expected, open_source, version = _resolve(request, location)
        say(f"installing {expected.name} onto {target.path}, verified by {expected.verified_by}")
        chunks = open_source(target.size + (64 << 20))
        fd = open_exclusive(target)
        writer = DiskWriter(fd, target, progress)
        staged: StagedImage | None = None
        try:
            with ImageStream(chunks, expected) as stream:
                try:
                    staged = writer.stage(stream)
                except ImageFormatError:
                    stream.verdict()  # a truncated or tampered source explains it better
                    raise
            writer.check_written(staged)
        except BaseException as exc:
            geometry = staged.geometry if staged else None
            note = wipe_quietly(writer, geometry) if writer.touched else None
            os.close(fd)
            _reraise(exc, note, touched=writer.touched)
            raise
        os.close(fd)
        return _finish(request, target, staged, config, oem_id, expected, version, started)
    finally:
        if location is not None:
            location.close()


def _reraise(exc: BaseException, note: str | None, *, touched: bool) -> None:
    """The error to report after the wipe: with the wipe's own failure noted, and an
    interrupt that came after the disk was touched saying what it left."""
    if isinstance(exc, KeyboardInterrupt) and touched:
        raise InstallError(
            "interrupted: the disk was left without a partition table (not bootable)"
            + (f"; {note}" if note else "")
        ) from None
    if note and isinstance(exc, InstallError):
        raise type(exc)(f"{exc}; {note}") from None


def _finish(
    request: InstallRequest,
    target: Target,
    staged: StagedImage,
    config: bytes | None,
    oem_id: str | None,
    expected: ExpectedImage,
    version: str | None,
    started: float,
) -> InstallOutcome:
    geometry = staged.geometry
    try:
        placed = place_on_oem(target.path, geometry.partition_labelled(OEM_LABEL), config, oem_id)
        fd = open_exclusive(target)
        try:
            DiskWriter(fd, target).commit(staged)
        finally:
            os.close(fd)
        move_backup_gpt(target.path, target.size, geometry)
    except BaseException as exc:
        fd = os.open(target.path, os.O_RDWR | os.O_CLOEXEC)
        note = wipe_quietly(DiskWriter(fd, target), geometry)
        os.close(fd)
        _reraise(exc, note, touched=True)
        raise
    if target.is_block:
        tell_the_kernel(target.path)
    return InstallOutcome(
        target=target.path,
        image=expected.name,
        version=version,
        verified_by=expected.verified_by,
        image_bytes=geometry.size,
        source_bytes=staged.source_length,
        zeroed_bytes=staged.zeroed,
        seconds=time.monotonic() - started,
        placed=placed,
    )
