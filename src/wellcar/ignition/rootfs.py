"""The target root: resolving config paths inside it as if chrooted, so neither `..` nor a
symlink (absolute or relative) can lead a write outside it; and atomic file writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wellcar.atomic_file import write_file_atomically
from wellcar.ignition.errors import UnsafePathError

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


@dataclass(frozen=True)
class TargetRoot:
    path: Path

    def resolve(self, config_path: str, *, follow_last: bool = True) -> Path:
        """The host path of config_path in the root, symlinks followed inside the root.

        With follow_last=False the last component is not followed (for links and for
        replacing a node), but its parent still is.
        """
        pure = PurePosixPath(config_path)
        if not pure.is_absolute() or ".." in pure.parts:
            raise UnsafePathError(f"{config_path!r}: paths must be absolute and without '..'")
        parts = list(pure.parts[1:])
        resolved: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not resolved:
                    raise UnsafePathError(f"{config_path!r}: a symlink leads outside the root")
                resolved.pop()
                continue
            host = self.path.joinpath(*resolved, name)
            if host.is_symlink() and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise UnsafePathError(f"{config_path!r}: too many levels of symlinks")
                target = os.readlink(host)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            resolved.append(name)
        return self.path.joinpath(*resolved)

    def relative(self, host_path: Path) -> str:
        return "/" + str(host_path.relative_to(self.path)) if host_path != self.path else "/"


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace path with data in one rename, so a crash never leaves half a file."""
    write_file_atomically(path, data, mode=mode)
