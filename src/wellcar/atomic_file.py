"""Replacing a file so that a crash or power cut leaves either the old or the new one.

One guarantee for every state and release file: the data goes to a temporary file in the
same directory (a rename across file systems is not atomic), the file is fsynced, renamed
over the target, and the directory is fsynced (the rename is durable only once the
directory entry is on disk). Standard library only: the node runs it on Debian's python3.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path

__all__ = ["fsync_directory", "write_file_atomically"]


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a rename into it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes | str, *, mode: int | None = 0o644) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), atomically and durably.

    ``mode`` is applied before the rename; ``None`` keeps the temporary file's 0600 (for
    file systems such as the ESP's FAT, where chmod may be refused). The directory must
    exist. On any error the temporary file is removed and the error raised; ``path`` is
    then untouched.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
            stream.flush()
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)
