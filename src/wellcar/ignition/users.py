"""Users and groups written straight into the target root's /etc/passwd, shadow, group and
gshadow (as `useradd --root` would), so provisioning needs no tools and works in a plain
directory. Existing accounts are only updated where that cannot surprise anyone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from wellcar.ignition.errors import ConflictError
from wellcar.ignition.rootfs import TargetRoot, atomic_write
from wellcar.ignition.types import Group, User

SHADOW_MODE = 0o640
PASSWD_MODE = 0o644


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str

    def line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.name}:x:{self.gid}:{','.join(self.members)}"


@dataclass
class AccountDb:
    """The four files of a root, parsed; change it in memory, then `write`."""

    accounts: list[Account] = field(default_factory=list)
    groups: list[GroupEntry] = field(default_factory=list)
    shadow: dict[str, list[str]] = field(default_factory=dict)
    gshadow: dict[str, list[str]] = field(default_factory=dict)
    login_defs: dict[str, str] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, root: TargetRoot) -> AccountDb:
        etc = root.path / "etc"
        db = cls()
        for fields_ in _rows(etc / "passwd", 7):
            db.accounts.append(Account(fields_[0], int(fields_[2]), int(fields_[3]), *fields_[4:7]))
        for fields_ in _rows(etc / "group", 4):
            members = tuple(m for m in fields_[3].split(",") if m)
            db.groups.append(GroupEntry(fields_[0], int(fields_[2]), members))
        db.shadow = {f[0]: f for f in _rows(etc / "shadow", 9)}
        db.gshadow = {f[0]: f for f in _rows(etc / "gshadow", 4)}
        db.login_defs = _login_defs(etc / "login.defs")
        return db

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)

    def group(self, name: str) -> GroupEntry | None:
        return next((g for g in self.groups if g.name == name), None)

    def _free_id(self, used: set[int], system: bool, kind: str) -> int:
        low_key, high_key = (
            (f"SYS_{kind}_MIN", f"SYS_{kind}_MAX") if system else (f"{kind}_MIN", f"{kind}_MAX")
        )
        low = int(self.login_defs.get(low_key, "100" if system else "1000"))
        high = int(self.login_defs.get(high_key, "999" if system else "60000"))
        for candidate in range(low, high + 1):
            if candidate not in used:
                return candidate
        raise ConflictError(f"no free {kind.lower()} left between {low} and {high}")

    def add_group(self, group: Group, where: str) -> GroupEntry:
        existing = self.group(group.name)
        if existing is not None:
            if group.gid is not None and group.gid != existing.gid:
                raise ConflictError(
                    f"{where}: group {group.name!r} already exists with gid {existing.gid}, "
                    f"not {group.gid}; drop gid from the config or pick another name"
                )
            if group.password_hash is not None:
                self._set_gshadow(group.name, group.password_hash)
            return existing
        used = {g.gid for g in self.groups}
        if group.gid is not None and group.gid in used:
            raise ConflictError(f"{where}: gid {group.gid} is already used by another group")
        gid = group.gid if group.gid is not None else self._free_id(used, bool(group.system), "GID")
        entry = GroupEntry(group.name, gid)
        self.groups.append(entry)
        self._set_gshadow(group.name, group.password_hash or "!")
        self.changed = True
        return entry

    def _set_gshadow(self, name: str, password: str) -> None:
        row = self.gshadow.get(name, [name, "!", "", ""])
        row[1] = password
        self.gshadow[name] = row
        self.changed = True

    def add_user(self, user: User, where: str) -> tuple[Account, bool]:
        """The user's account after the change, and whether it was created."""
        existing = self.account(user.name)
        if existing is not None:
            return self._update_user(existing, user, where), False
        used = {a.uid for a in self.accounts}
        if user.uid is not None and user.uid in used:
            raise ConflictError(f"{where}: uid {user.uid} is already used by another user")
        uid = user.uid if user.uid is not None else self._free_id(used, bool(user.system), "UID")
        gid = self._primary_gid(user, uid, where)
        account = Account(
            user.name,
            uid,
            gid,
            user.gecos or "",
            user.home_dir or f"/home/{user.name}",
            user.shell or "/bin/bash",
        )
        self.accounts.append(account)
        today = str(int(time.time() // 86400))
        self.shadow[user.name] = [user.name, user.password_hash or "*", today, "0", "99999",
                                  "7", "", "", ""]  # fmt: skip
        self._add_supplementary(user, where)
        self.changed = True
        return account, True

    def _primary_gid(self, user: User, uid: int, where: str) -> int:
        if user.primary_group is not None:
            group = self.group(user.primary_group)
            if group is None:
                raise ConflictError(
                    f"{where}.primaryGroup: group {user.primary_group!r} does not exist; "
                    "add it to passwd.groups"
                )
            return group.gid
        if user.no_user_group:
            users = self.group("users")
            return users.gid if users else 100
        used = {g.gid for g in self.groups}
        gid = uid if uid not in used else self._free_id(used, bool(user.system), "GID")
        if self.group(user.name) is not None:
            raise ConflictError(
                f"{where}: a group named {user.name!r} already exists; set primaryGroup "
                "or noUserGroup"
            )
        return self.add_group(Group(name=user.name, gid=gid), where).gid

    def _update_user(self, existing: Account, user: User, where: str) -> Account:
        # Identity (uid, group, home) of an existing account is never changed behind its
        # owner's back: files already belong to it. Say so and stop.
        conflicts = []
        if user.uid is not None and user.uid != existing.uid:
            conflicts.append(f"uid {existing.uid} (config: {user.uid})")
        if user.home_dir is not None and user.home_dir != existing.home:
            conflicts.append(f"home {existing.home} (config: {user.home_dir})")
        if user.primary_group is not None:
            group = self.group(user.primary_group)
            if group is None or group.gid != existing.gid:
                conflicts.append(f"primary gid {existing.gid} (config: {user.primary_group})")
        if conflicts:
            raise ConflictError(
                f"{where}: user {user.name!r} already exists with {', '.join(conflicts)}; "
                "remove those keys from the config or use another user name"
            )
        updated = replace(
            existing,
            gecos=user.gecos if user.gecos is not None else existing.gecos,
            shell=user.shell if user.shell is not None else existing.shell,
        )
        if updated != existing:
            self.accounts[self.accounts.index(existing)] = updated
            self.changed = True
        if user.password_hash is not None:
            row = self.shadow.get(user.name, [user.name, "*", "", "0", "99999", "7", "", "", ""])
            row[1] = user.password_hash
            self.shadow[user.name] = row
            self.changed = True
        self._add_supplementary(user, where)
        return updated

    def _add_supplementary(self, user: User, where: str) -> None:
        for name in user.groups:
            group = self.group(name)
            if group is None:
                raise ConflictError(
                    f"{where}.groups: group {name!r} does not exist; add it to passwd.groups"
                )
            if user.name not in group.members:
                self.groups[self.groups.index(group)] = replace(
                    group, members=(*group.members, user.name)
                )
                self.changed = True

    def write(self, root: TargetRoot) -> None:
        if not self.changed:
            return
        etc = root.path / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        files = (
            ("passwd", [a.line() for a in self.accounts], PASSWD_MODE),
            ("group", [g.line() for g in self.groups], PASSWD_MODE),
            ("shadow", [":".join(r) for r in self.shadow.values()], SHADOW_MODE),
            ("gshadow", [":".join(r) for r in self.gshadow.values()], SHADOW_MODE),
        )
        for name, lines, mode in files:
            atomic_write(etc / name, "".join(f"{line}\n" for line in lines).encode(), mode)


def _rows(path: Path, width: int) -> list[list[str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields_ = line.split(":")
        rows.append((fields_ + [""] * width)[:width])
    return rows


def _login_defs(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                values[parts[0]] = parts[1]
    return values
