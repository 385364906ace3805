"""newc cpio archives, written and read in Python: what the kernel unpacks from an initrd.

The kernel unpacks concatenated archives one after another (each may be compressed) and
skips zero bytes between them, but a plain archive must start at a 4-byte boundary: every
archive here is padded to :data:`ARCHIVE_ALIGN` bytes, so archives can be appended to
any initrd. Entries have owner root, fixed times and no inode numbers, so the same files
give the same bytes.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
ARCHIVE_ALIGN = 512
HEADER_SIZE = 110
COPY_CHUNK = 4 << 20


class CpioError(Exception):
    """An archive is not a newc cpio archive (or is truncated)."""


@dataclass(frozen=True)
class Member:
    """One entry to write: a directory (``source`` None, ``data`` None), bytes, or a file
    copied from ``source``."""

    name: str  # relative, no leading "/"
    data: bytes | None = None
    source: Path | None = None
    mode: int = 0o644

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.source is None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.source is not None:
            return self.source.stat().st_size
        return 0


def _pad(n: int, to: int = 4) -> int:
    return (-n) % to


def _header(ino: int, mode: int, size: int, name: str, mtime: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, mtime, size, 0, 0, 0, 0, len(encoded), 0)
    head = MAGIC + b"".join(f"{value:08x}".encode() for value in fields) + encoded
    return head + b"\0" * _pad(len(head))


def with_parents(members: Sequence[Member]) -> list[Member]:
    """``members`` with a directory entry before each file for every missing parent."""
    seen: set[str] = {m.name for m in members if m.is_dir}
    out: list[Member] = []
    for member in members:
        parts = member.name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in seen:
                seen.add(parent)
                out.append(Member(parent, mode=0o755))
        out.append(member)
    return out


def write_cpio(out: IO[bytes], members: Sequence[Member], *, mtime: int = 0) -> int:
    """Write one archive (parents added, padded to :data:`ARCHIVE_ALIGN`); bytes written."""
    written = 0
    for ino, member in enumerate(with_parents(members), start=1):
        if member.name.startswith("/") or ".." in member.name.split("/"):
            raise CpioError(f"archive member {member.name!r} must be a relative path")
        kind = stat.S_IFDIR if member.is_dir else stat.S_IFREG
        size = member.size
        head = _header(ino, kind | member.mode, size, member.name, mtime)
        out.write(head)
        written += len(head)
        if member.data is not None:
            out.write(member.data)
        elif member.source is not None:
            with member.source.open("rb") as src:
                shutil.copyfileobj(src, out, COPY_CHUNK)
        written += size
        out.write(b"\0" * _pad(size))
        written += _pad(size)
    trailer = _header(0, 0, 0, TRAILER, 0)
    out.write(trailer)
    written += len(trailer)
    tail = _pad(written, ARCHIVE_ALIGN)
    out.write(b"\0" * tail)
    return written + tail


def cpio_bytes(members: Sequence[Member], *, mtime: int = 0) -> bytes:
    import io

    buffer = io.BytesIO()
    write_cpio(buffer, members, mtime=mtime)
    return buffer.getvalue()


@dataclass(frozen=True)
class Entry:
    """One entry read back: its name, mode, size and where its data starts."""

    name: str
    mode: int
    size: int
    offset: int


def read_entries(data: bytes) -> Iterator[Entry]:
    """The entries of one plain archive at the start of ``data`` (up to its trailer)."""
    pos = 0
    while True:
        head = data[pos : pos + HEADER_SIZE]
        if len(head) < HEADER_SIZE or head[:6] != MAGIC:
            raise CpioError(f"no cpio header at byte {pos}")
        try:
            values = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise CpioError(f"corrupt cpio header at byte {pos}") from None
        mode, size, namesize = values[1], values[6], values[11]
        name_end = pos + HEADER_SIZE + namesize
        name = data[pos + HEADER_SIZE : name_end - 1].decode(errors="replace")
        start = name_end + _pad(name_end)
        if name == TRAILER:
            return
        if start + size > len(data):
            raise CpioError(f"cpio member {name!r} is truncated")
        yield Entry(name, mode, size, start)
        pos = start + size + _pad(size)


def read_member(data: bytes, name: str) -> bytes | None:
    for entry in read_entries(data):
        if entry.name == name:
            return data[entry.offset : entry.offset + entry.size]
    return None
