"""Writing the image so that the target is never half-valid.

1. The image's primary GPT (its first sectors) is read and checked first: the image's
   size, and whether the target can hold it, are known before anything is written.
2. The target's own partition tables are wiped (its first and last MiB): from here on
   it has none, so no firmware or tool takes it for a disk until step 5.
3. Everything between the two GPTs streams to the target; runs of zeros become
   zero-range requests (BLKZEROOUT, or a punched hole in a file) instead of writes.
   Both GPTs stay in memory. The stream then says whether the source was the signed
   file (wellcar.install.image_stream); if not, the caller wipes again and stops.
4. What was written is read back (past the page cache) and compared, MiB by MiB.
5. :meth:`DiskWriter.commit`: the backup GPT, then the primary, each synced and read back.

On any failure after step 2 :meth:`DiskWriter.wipe` zeroes both GPT areas again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from wellcar.install.errors import ImageFormatError, InstallError, TargetError
from wellcar.install.image_geometry import ImageGeometry, head_bytes_needed, read_geometry
from wellcar.install.image_stream import ImageStream
from wellcar.install.target import Target

CHUNK = 1 << 20
READ_WINDOW = 8 << 20
DIRECT_ALIGNMENT = 4096  # O_DIRECT offsets: a multiple of any logical block size
WIPE_BYTES = 1 << 20  # of each end of the target: GPTs, old MBR boot code, md superblocks
_ZERO = bytes(CHUNK)
BLKZEROOUT = 0x127F  # _IO(0x12, 127)
BLKFLSBUF = 0x1261  # _IO(0x12, 97)
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02

# stage ("write" or "check"), bytes done, bytes in all
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class StagedImage:
    """An image written but for its two GPTs, which are held here."""

    geometry: ImageGeometry
    head: bytes
    tail: bytes
    source_length: int = 0
    zeroed: int = 0  # bytes written as zero ranges
    # (offset, length, sha256 or None for all zeros) of everything written
    chunks: list[tuple[int, int, bytes | None]] = field(default_factory=list)


def _libc_fallocate() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    function = ctypes.CDLL(name, use_errno=True).fallocate
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    return function


class DiskWriter:
    def __init__(self, fd: int, target: Target, progress: Progress | None = None) -> None:
        self.fd = fd
        self.target = target
        self.progress = progress or _no_progress
        self._fallocate = None if target.is_block else _libc_fallocate()
        self.touched = False  # the target was written to (wiped at least once)

    # ------------------------------------------------------------------ primitives

    def _write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.pwrite(self.fd, view, offset)
            except OSError as exc:
                raise TargetError(
                    f"writing {self.target.path} at byte {offset} failed: {exc.strerror}"
                ) from None
            view, offset = view[written:], offset + written

    def _zero(self, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zeros without writing them if possible."""
        if length <= 0:
            return
        try:
            if self.target.is_block:
                fcntl.ioctl(self.fd, BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            if self._fallocate is not None:
                flags = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
                if self._fallocate(self.fd, flags, offset, length) == 0:
                    return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                raise TargetError(
                    f"zeroing {self.target.path} at byte {offset} failed: {exc.strerror}"
                ) from None
        end = offset + length
        while offset < end:
            piece = min(CHUNK, end - offset)
            self._write(offset, _ZERO[:piece])
            offset += piece

    def _sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise TargetError(f"{self.target.path}: flushing failed: {exc.strerror}") from None

    def _read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise TargetError(
                f"{self.target.path}: reading back {length} bytes at {offset} gave {len(data)}"
            )
        return data

    def _drop_cache(self) -> None:
        """So that reading back asks the device, not the page cache."""
        if self.target.is_block:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, BLKFLSBUF, 0)
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    # ---------------------------------------------------------------------- steps

    def wipe(self, geometry: ImageGeometry | None = None) -> None:
        """Zero the partition-table areas: the target's first and last MiB and, when the
        image is known, both of its GPT areas. Leaves the disk without a usable table."""
        size = self.target.size
        self._zero(0, min(WIPE_BYTES, size))
        tail = size - min(WIPE_BYTES, size)
        self._zero(tail - tail % 512, size - (tail - tail % 512))
        if geometry is not None and geometry.size <= size:
            self._zero(geometry.tail_start, geometry.size - geometry.tail_start)
        self._sync()
        self.touched = True

    def _read_exact(self, stream: ImageStream, length: int) -> bytes:
        parts: list[bytes] = []
        missing = length
        while missing > 0:
            piece = stream.read(missing)
            if not piece:
                break
            parts.append(piece)
            missing -= len(piece)
        data = b"".join(parts)
        if len(data) != length:
            raise ImageFormatError(
                f"{stream.expected.name} ends before the end of the disk its partition table "
                "describes (truncated or not a released image)"
            )
        return data

    def stage(self, stream: ImageStream) -> StagedImage:
        """Steps 1-3; raises TargetError 'too small' before writing anything."""
        name = stream.expected.name
        first = self._read_exact(stream, 1024)
        head = first + self._read_exact(stream, head_bytes_needed(first) - len(first))
        geometry = read_geometry(head, name)
        if geometry.size > self.target.size:
            raise TargetError(
                f"{self.target.path} is too small: {self.target.size} bytes, the image needs "
                f"{geometry.size}; nothing was written"
            )
        self.wipe()
        staged = StagedImage(geometry, head, b"")
        offset, end = geometry.head, geometry.tail_start
        zero_start: int | None = None
        while offset < end:
            length = min(CHUNK - offset % CHUNK, end - offset)
            chunk = self._read_exact(stream, length)
            if chunk == (_ZERO if length == CHUNK else _ZERO[:length]):
                staged.chunks.append((offset, length, None))
                zero_start = offset if zero_start is None else zero_start
            else:
                if zero_start is not None:
                    self._zero(zero_start, offset - zero_start)
                    staged.zeroed += offset - zero_start
                    zero_start = None
                staged.chunks.append((offset, length, hashlib.sha256(chunk).digest()))
                self._write(offset, chunk)
            offset += length
            self.progress("write", offset, geometry.size)
        if zero_start is not None:
            self._zero(zero_start, end - zero_start)
            staged.zeroed += end - zero_start
        staged.tail = self._read_exact(stream, geometry.size - geometry.tail_start)
        staged.source_length = stream.finish()  # the verdict on the source
        self._sync()
        self.progress("write", geometry.size, geometry.size)
        return staged

    def check_written(self, staged: StagedImage) -> None:
        """Step 4: read everything back from the device and compare."""
        self._drop_cache()
        total = staged.geometry.size
        reader = DirectReader(self.target)
        try:
            for offset, length, digest in staged.chunks:
                self._compare(reader.read(offset, length), offset, length, digest)
                self.progress("check", offset + length, total)
        finally:
            reader.close()

    def _compare(self, data: bytes, offset: int, length: int, digest: bytes | None) -> None:
        same = (
            data == (_ZERO if length == CHUNK else _ZERO[:length])
            if digest is None
            else hashlib.sha256(data).digest() == digest
        )
        if not same:
            raise TargetError(
                f"{self.target.path} reads back differently at byte {offset} than was "
                "written: the disk is failing or something else writes to it"
            )

    def commit(self, staged: StagedImage) -> None:
        """Step 5: backup GPT, then primary, each synced and read back."""
        geometry = staged.geometry
        self._write(geometry.tail_start, staged.tail)
        self._sync()
        self._write(0, staged.head)
        self._sync()
        self._drop_cache()
        if (
            self._read(geometry.tail_start, len(staged.tail)) != staged.tail
            or self._read(0, len(staged.head)) != staged.head
        ):
            raise TargetError(f"{self.target.path}: the partition tables read back differently")


class DirectReader:
    """Reads of the target that ask the device, not the page cache (``O_DIRECT`` into an
    aligned buffer, in windows of :data:`READ_WINDOW`); falls back to buffered reads
    where O_DIRECT is refused (tmpfs files). Also several times faster on loop devices."""

    def __init__(self, target: Target) -> None:
        self.target = target
        try:
            self.fd = os.open(target.path, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
        except OSError:
            self.fd = os.open(target.path, os.O_RDONLY | os.O_CLOEXEC)
        self._buffer = mmap.mmap(-1, READ_WINDOW)  # page-aligned, as O_DIRECT wants
        self._start = 0
        self._length = 0

    def read(self, offset: int, length: int) -> bytes:
        if not (self._start <= offset and offset + length <= self._start + self._length):
            self._start = offset - offset % DIRECT_ALIGNMENT
            try:
                self._length = os.preadv(self.fd, [self._buffer], self._start)
            except OSError as exc:
                raise TargetError(
                    f"reading back {self.target.path} at byte {offset} failed: {exc.strerror}"
                ) from None
            if offset + length > self._start + self._length:
                raise TargetError(
                    f"{self.target.path} ends before byte {offset + length} on reading back"
                )
        start = offset - self._start
        return self._buffer[start : start + length]

    def close(self) -> None:
        self._buffer.close()
        os.close(self.fd)


def wipe_quietly(writer: DiskWriter, geometry: ImageGeometry | None) -> str | None:
    """Wipe after a failure; returns a note when even that failed (the caller's error
    stays the one reported)."""
    try:
        writer.wipe(geometry)
    except (InstallError, OSError) as exc:
        return f"wiping the partition tables failed too ({exc}): do not boot from this disk"
    return None
