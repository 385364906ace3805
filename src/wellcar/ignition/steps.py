"""The writes of an apply, computed in full (contents fetched, owners checked, conflicts
found) before the first one runs. Each step changes one node of the target root.

Owners named in the config are looked up when the step runs, after Debian's account tools
made the config's users and groups: the tools, not the plan, pick a new user's uid."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wellcar.ignition.rootfs import atomic_write

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _make_parents(path: Path) -> None:
    # Ignition creates missing parents as root-owned 0755 directories.
    path.parent.mkdir(mode=DEFAULT_DIR_MODE, parents=True, exist_ok=True)


@dataclass(frozen=True)
class Ownership:
    """Who owns a node: a number, a name (looked up when the step runs) or None (root, or
    the existing owner); ``primary_of`` names a user whose primary group owns it."""

    user: int | str | None = None
    group: int | str | None = None
    primary_of: str | None = None


NO_OWNER = Ownership()


class OwnerIds(Protocol):
    def ids(self, owner: Ownership) -> tuple[int | None, int | None]: ...


def _chown(path: Path, owner: Ownership, owners: OwnerIds | None) -> None:
    if owners is None or owner == NO_OWNER:
        return
    uid, gid = owners.ids(owner)
    if uid is not None or gid is not None:
        os.chown(
            path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False
        )


@dataclass(frozen=True)
class WriteFile:
    host: Path
    contents: bytes | None  # None: keep the existing contents (no source in the config)
    append: bytes
    mode: int | None  # None: keep the existing mode, or 0644 for a new file
    owner: Ownership
    replace_node: bool  # something else (or a file to overwrite) is at host

    def run(self, owners: OwnerIds | None) -> None:
        _make_parents(self.host)
        if self.replace_node and not self.host.is_file():
            _remove(self.host)
        existed = self.host.is_file()
        if self.contents is None:
            data = (self.host.read_bytes() if existed else b"") + self.append
        else:
            data = self.contents + self.append
        if self.mode is not None:
            mode = self.mode
        else:
            mode = self.host.stat().st_mode & 0o7777 if existed else DEFAULT_FILE_MODE
        if self.contents is not None or self.append or not existed:
            atomic_write(self.host, data, mode)
        else:
            os.chmod(self.host, mode)
        _chown(self.host, self.owner, owners)


@dataclass(frozen=True)
class MakeDirectory:
    host: Path
    mode: int | None
    owner: Ownership
    replace_node: bool

    def run(self, owners: OwnerIds | None) -> None:
        _make_parents(self.host)
        if self.replace_node and not (self.host.is_dir() and not self.host.is_symlink()):
            _remove(self.host)
        self.host.mkdir(mode=DEFAULT_DIR_MODE, exist_ok=True)
        if self.mode is not None:
            os.chmod(self.host, self.mode)
        _chown(self.host, self.owner, owners)


@dataclass(frozen=True)
class MakeLink:
    host: Path
    target: str  # symlink: as written; hard link: the host path of the existing file
    hard: bool
    owner: Ownership
    replace_node: bool

    def run(self, owners: OwnerIds | None) -> None:
        _make_parents(self.host)
        if self.replace_node or self.host.is_symlink():
            _remove(self.host)
        if self.hard:
            os.link(self.target, self.host)
        else:
            os.symlink(self.target, self.host)
            _chown(self.host, self.owner, owners)


@dataclass(frozen=True)
class RemoveLink:
    host: Path

    def run(self, owners: OwnerIds | None) -> None:
        if self.host.is_symlink():
            self.host.unlink()


Step = WriteFile | MakeDirectory | MakeLink | RemoveLink
