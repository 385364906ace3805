"""Planning `storage.files`, `directories` and `links`: fetch every content, resolve owners
and paths inside the root, and refuse what would clobber a node without `overwrite`."""

from __future__ import annotations

import posixpath
from pathlib import Path

from wellcar.ignition.errors import ConflictError, UnsafePathError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.steps import MakeDirectory, MakeLink, Ownership, Step, WriteFile
from wellcar.ignition.types import Owner, Storage
from wellcar.ignition.users import AccountDb


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def _user(owner: Owner, db: AccountDb, where: str) -> int | str | None:
    if owner.name is not None and db.account(owner.name) is None:
        raise ConflictError(f"{where}.name: no user {owner.name!r} on this machine")
    return owner.name if owner.name is not None else owner.id


def _group(owner: Owner, db: AccountDb, where: str) -> int | str | None:
    if owner.name is not None and db.group(owner.name) is None:
        raise ConflictError(f"{where}.name: no group {owner.name!r} on this machine")
    return owner.name if owner.name is not None else owner.id


def _ownership(user: Owner, group: Owner, db: AccountDb, where: str) -> Ownership:
    return Ownership(_user(user, db, f"{where}.user"), _group(group, db, f"{where}.group"))


def _safe(root: TargetRoot, path: str, where: str, follow_last: bool = False) -> Path:
    try:
        return root.resolve(path, follow_last=follow_last)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{where}: {exc}") from None


def _climbs_out(directory: str, target: str) -> bool:
    """Whether a relative symlink target climbs above / from directory (a chroot would
    stop there, but the host would not: the link would point outside the target root)."""
    if target.startswith("/"):
        return False
    depth = _depth(directory)
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _exists(host: Path) -> bool:
    return host.exists() or host.is_symlink()


def plan_nodes(storage: Storage, root: TargetRoot, db: AccountDb, fetcher: Fetcher) -> list[Step]:
    steps: list[Step] = []
    directories = sorted(enumerate(storage.directories), key=lambda e: _depth(e[1].path))
    for i, d in directories:
        where = f"$.storage.directories[{i}]"
        host = _safe(root, d.path, f"{where}.path")
        is_dir = host.is_dir() and not host.is_symlink()
        if _exists(host) and not is_dir and not d.overwrite:
            raise ConflictError(
                f"{where}.path: {d.path} exists and is not a directory; set overwrite: true "
                "to replace it"
            )
        owner = _ownership(d.user, d.group, db, where)
        steps.append(MakeDirectory(host, d.mode, owner, replace_node=bool(d.overwrite)))
    for i, f in sorted(enumerate(storage.files), key=lambda e: _depth(e[1].path)):
        where = f"$.storage.files[{i}]"
        host = _safe(root, f.path, f"{where}.path")
        if _exists(host) and not f.overwrite:
            if not host.is_file() or host.is_symlink():
                raise ConflictError(
                    f"{where}.path: {f.path} exists and is not a regular file; set overwrite: "
                    "true to replace it"
                )
            if f.contents.source is not None:
                raise ConflictError(
                    f"{where}.path: {f.path} already exists; set overwrite: true to replace "
                    "it, or remove contents to keep it"
                )
        contents = (
            fetcher.fetch(f.contents, f"{where}.contents")
            if f.contents.source is not None
            else None
        )
        appended = b"".join(
            fetcher.fetch(r, f"{where}.append[{j}]") for j, r in enumerate(f.append)
        )
        owner = _ownership(f.user, f.group, db, where)
        mode = f.mode & 0o777 if f.mode is not None else None
        steps.append(WriteFile(host, contents, appended, mode, owner, bool(f.overwrite)))
    planned_files = {root.resolve(f.path, follow_last=False) for f in storage.files}
    for i, link in sorted(enumerate(storage.links), key=lambda e: _depth(e[1].path)):
        where = f"$.storage.links[{i}]"
        host = _safe(root, link.path, f"{where}.path")
        target = link.target or ""
        if link.hard:
            target_host = _safe(root, target, f"{where}.target", follow_last=True)
            if not target_host.is_file() and target_host not in planned_files:
                raise ConflictError(f"{where}.target: {target} does not exist to hard-link to")
            target = str(target_host)
        else:
            if _climbs_out(posixpath.dirname(link.path), target):
                raise UnsafePathError(f"{where}.target: {target!r} leads outside the root")
        if _exists(host) and not link.overwrite:
            same = host.is_symlink() and not link.hard and str(host.readlink()) == target
            if not same:
                raise ConflictError(
                    f"{where}.path: {link.path} already exists; set overwrite: true to replace it"
                )
        owner = _ownership(link.user, link.group, db, where)
        steps.append(MakeLink(host, target, bool(link.hard), owner, bool(link.overwrite)))
    return steps
