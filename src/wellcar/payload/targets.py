"""Byte regions a payload is applied to (a file, a partition inside a disk image, a device).

A region is a file plus an offset and an optional fixed size: ``usr-b.img`` (a regular
file that may grow), ``disk.img`` at USR-B's offset (fixed size), or ``/dev/vda4``.
Writers stream across an operation's extents so no operation's output needs to exist
twice in memory, and hash what they write when it arrives in order so the final check
of a full payload does not have to read the partition back.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wellcar.payload.errors import TargetError
from wellcar.payload.manifest import Extent

COPY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class TargetRegion:
    """Where a partition's bytes live: ``path`` from ``offset``, ``size`` bytes (None: grows)."""

    path: Path
    offset: int = 0
    size: int | None = None

    def describe(self) -> str:
        if self.offset or self.size is not None:
            return f"{self.path} (bytes {self.offset}..{self.offset + (self.size or 0)})"
        return str(self.path)

    def overlaps(self, other: TargetRegion) -> bool:
        try:
            same = self.path.exists() and other.path.exists() and self.path.samefile(other.path)
        except OSError:
            same = False
        if not same:
            return False
        end_a = self.offset + (self.size if self.size is not None else 1 << 62)
        end_b = other.offset + (other.size if other.size is not None else 1 << 62)
        return self.offset < end_b and other.offset < end_a


def region_size(region: TargetRegion) -> int:
    """The usable size of a region (a device's size, or the file's size when it grows)."""
    if region.size is not None:
        return region.size
    mode = os.stat(region.path).st_mode
    if stat.S_ISBLK(mode):
        with open(region.path, "rb") as dev:
            return dev.seek(0, os.SEEK_END) - region.offset
    return os.stat(region.path).st_size - region.offset


def is_fixed_size(region: TargetRegion) -> bool:
    """Partitions and devices have a size; a plain slot image file grows as needed."""
    if region.size is not None:
        return True
    try:
        return stat.S_ISBLK(os.stat(region.path).st_mode)
    except FileNotFoundError:
        return False


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds (or will hold) ``path``."""
    probe = path if path.exists() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    info = os.statvfs(probe)
    return info.f_bavail * info.f_frsize


def byte_ranges(extents: tuple[Extent, ...], block_size: int) -> Iterator[tuple[int, int]]:
    for extent in extents:
        yield extent.start_block * block_size, extent.num_blocks * block_size


class RegionReader:
    """Reads a region. Blocks past ``logical_size`` rounded up to a block read as zeros,
    the way a generator pads an image whose size is not a multiple of 4 KiB."""

    def __init__(self, region: TargetRegion, logical_size: int | None = None) -> None:
        self.region = region
        self.logical_size = logical_size
        try:
            self.fd = os.open(region.path, os.O_RDONLY)
        except OSError as exc:
            raise TargetError(f"cannot open source {region.path}: {exc.strerror}") from None

    def close(self) -> None:
        os.close(self.fd)

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, self.region.offset + offset)
        if len(data) != length and self.logical_size is not None:
            # Only the padding of the last block may be missing, not real bytes.
            padded = -(-self.logical_size // 4096) * 4096
            if offset + len(data) >= self.logical_size and offset + length <= padded:
                data += bytes(length - len(data))
        if len(data) != length:
            raise TargetError(f"source {self.region.describe()} ends before byte {offset + length}")
        return data

    def read_extents(self, extents: tuple[Extent, ...], block_size: int) -> bytes:
        return b"".join(self.read_at(o, n) for o, n in byte_ranges(extents, block_size))

    def iter_extents(self, extents: tuple[Extent, ...], block_size: int) -> Iterator[bytes]:
        for offset, length in byte_ranges(extents, block_size):
            for start in range(0, length, COPY_CHUNK):
                yield self.read_at(offset + start, min(COPY_CHUNK, length - start))

    def sha256(self, size: int) -> bytes:
        hasher = hashlib.sha256()
        for start in range(0, size, COPY_CHUNK * 4):
            hasher.update(self.read_at(start, min(COPY_CHUNK * 4, size - start)))
        return hasher.digest()


class RegionWriter:
    """Writes into a region, hashing the first ``hash_size`` bytes if they come in order."""

    def __init__(self, region: TargetRegion, hash_size: int, truncate: bool = False) -> None:
        self.region = region
        self.growing = not is_fixed_size(region)
        flags = os.O_RDWR | (os.O_CREAT if region.size is None else 0)
        flags |= os.O_TRUNC if truncate and self.growing else 0
        try:
            self.fd = os.open(region.path, flags, 0o644)
        except OSError as exc:
            raise TargetError(f"cannot open target {region.path}: {exc.strerror}") from None
        self.hash_size = hash_size
        self.hasher = hashlib.sha256()
        self.hashed_upto = 0
        self.in_order = True
        self.bytes_written = 0

    def close(self) -> None:
        os.close(self.fd)

    def sync(self) -> None:
        os.fsync(self.fd)

    def finish(self) -> None:
        """A growing file ends exactly at the new size (no block padding, no stale tail)."""
        if self.growing:
            os.ftruncate(self.fd, self.region.offset + self.hash_size)
        self.sync()

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        if self.region.size is not None and offset + len(data) > self.region.size:
            raise TargetError(f"write beyond the end of {self.region.describe()}")
        written = os.pwrite(self.fd, data, self.region.offset + offset)
        if written != len(data):
            raise TargetError(f"short write to {self.region.describe()} (disk full?)")
        self.bytes_written += written
        if self.in_order and offset == self.hashed_upto:
            wanted = min(len(data), self.hash_size - self.hashed_upto)
            if wanted > 0:
                self.hasher.update(memoryview(data)[:wanted])
                self.hashed_upto += wanted
        elif offset < self.hash_size:
            self.in_order = False

    def write_extents(
        self, extents: tuple[Extent, ...], block_size: int, chunks: Iterator[bytes]
    ) -> None:
        """Spread ``chunks`` across ``extents`` in order; zero-fill whatever is left."""
        ranges = list(byte_ranges(extents, block_size))
        index, used = 0, 0
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                if index >= len(ranges):
                    raise TargetError("operation produced more data than its extents hold")
                offset, length = ranges[index]
                take = min(len(view), length - used)
                self.write_at(offset + used, view[:take])
                view = view[take:]
                used += take
                if used == length:
                    index, used = index + 1, 0
        while index < len(ranges):
            offset, length = ranges[index]
            remaining = length - used
            for start in range(0, remaining, COPY_CHUNK):
                size = min(COPY_CHUNK, remaining - start)
                self.write_at(offset + used + start, bytes(size))
            index, used = index + 1, 0

    def final_sha256(self) -> bytes:
        """SHA-256 of the first ``hash_size`` bytes; reads back only after out-of-order writes."""
        if self.in_order and self.hashed_upto == self.hash_size:
            return self.hasher.digest()
        reader = RegionReader(self.region)
        try:
            return reader.sha256(self.hash_size)
        finally:
            reader.close()
