"""Users and groups, made as Ignition makes them: Debian's `groupadd`, `useradd` and
`usermod` (package `passwd`) run with `--root` against the target root. The tools keep
`/etc/shadow` and `/etc/gshadow` as the image has them (`root:shadow` 0640), give new users
`/etc/subuid` and `/etc/subgid` ranges, fill homes from `/etc/skel`, and pick new ids.

Before any tool runs, the plan checks the config against the root's accounts in memory
(`AccountDb`), so a config that cannot be applied fails in one line with nothing changed.
Existing accounts are only changed where that cannot surprise anyone.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from wellcar.ignition.errors import ApplyError, ConflictError
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.steps import Ownership
from wellcar.ignition.types import Group, User

ACCOUNT_TOOLS = ("groupadd", "groupmod", "groupdel", "useradd", "usermod", "userdel")
DEFAULT_HOME_BASE = "/home"  # useradd's HOME when /etc/default/useradd does not set it
NO_PASSWORD = "*"  # Ignition's: no password login (ssh keys only), not a locked account


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    gecos: str = ""
    shell: str = ""
    password: str | None = None  # the shadow entry's hash


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = ()
    password: str | None = None  # the gshadow entry's hash


@dataclass
class AccountDb:
    """The root's accounts, parsed: the plan changes it in memory to check the config
    (ids for new accounts are a prediction, only for those checks); `commands` are what
    Debian's tools are then asked to do."""

    accounts: list[Account] = field(default_factory=list)
    groups: list[GroupEntry] = field(default_factory=list)
    login_defs: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)

    @classmethod
    def load(cls, root: TargetRoot) -> AccountDb:
        etc = root.path / "etc"
        db = cls()
        shadow = {row[0]: row[1] for row in _rows(etc / "shadow", 2)}
        gshadow = {row[0]: row[1] for row in _rows(etc / "gshadow", 2)}
        for row in _rows(etc / "passwd", 7):
            account = Account(row[0], _int(row[2]), _int(row[3]), row[5], row[4], row[6])
            db.accounts.append(replace(account, password=shadow.get(row[0])))
        for row in _rows(etc / "group", 4):
            members = tuple(m for m in row[3].split(",") if m)
            db.groups.append(GroupEntry(row[0], _int(row[2]), members, gshadow.get(row[0])))
        db.login_defs = _settings(etc / "login.defs", " ")
        home = _settings(etc / "default/useradd", "=").get("HOME")
        db.login_defs.setdefault("HOME", home or DEFAULT_HOME_BASE)
        return db

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)

    def group(self, name: str) -> GroupEntry | None:
        return next((g for g in self.groups if g.name == name), None)

    def ids(self, owner: Ownership) -> tuple[int | None, int | None]:
        """uid and gid of an owner, names looked up in this database."""
        uid = gid = None
        if isinstance(owner.user, int):
            uid = owner.user
        elif owner.user is not None:
            account = self.account(owner.user)
            if account is None:
                raise ApplyError(f"user {owner.user!r} vanished while provisioning")
            uid = account.uid
        if isinstance(owner.group, int):
            gid = owner.group
        elif owner.group is not None:
            group = self.group(owner.group)
            if group is None:
                raise ApplyError(f"group {owner.group!r} vanished while provisioning")
            gid = group.gid
        if owner.primary_of is not None:
            account = self.account(owner.primary_of)
            gid = account.gid if account is not None else gid
        return uid, gid

    def _new_id(self, used: set[int], system: bool, kind: str) -> int:
        """The id useradd/groupadd would pick: after the highest used one in the range
        (from the top down for system accounts), else the lowest free one."""
        prefix = "SYS_" if system else ""
        low = _int(self.login_defs.get(f"{prefix}{kind}_MIN", "100" if system else "1000"))
        high = _int(self.login_defs.get(f"{prefix}{kind}_MAX", "999" if system else "60000"))
        taken = sorted(i for i in used if low <= i <= high)
        if system:
            free = [i for i in range(high, low - 1, -1) if i not in used]
        else:
            after = (taken[-1] + 1) if taken else low
            free = [after] if after <= high else [i for i in range(low, high + 1) if i not in used]
        if not free:
            raise ConflictError(f"no free {kind.lower()} left between {low} and {high}")
        return free[0]

    def remove_group(self, name: str, where: str) -> None:
        """``shouldExist: false``: groupdel when the group is there, nothing otherwise."""
        existing = self.group(name)
        if existing is None:
            return
        owners = [a.name for a in self.accounts if a.gid == existing.gid]
        if owners:
            raise ConflictError(
                f"{where}: group {name!r} is the primary group of {', '.join(owners)}; "
                "remove or change those users first"
            )
        self.groups.remove(existing)
        self.commands.append(["groupdel", name])

    def remove_user(self, name: str, where: str) -> None:
        """``shouldExist: false``: userdel (the home stays, as with Ignition) when the
        user is there, nothing otherwise."""
        existing = self.account(name)
        if existing is None:
            return
        if existing.uid == 0:
            raise ConflictError(f"{where}: {name!r} has uid 0 and cannot be removed")
        self.accounts.remove(existing)
        self.commands.append(["userdel", name])
        # userdel also removes the user's own group (USERGROUPS_ENAB, Debian's default)
        # when no other user has it as primary group: the plan's database follows suit.
        own = self.group(name)
        if (
            self.login_defs.get("USERGROUPS_ENAB", "yes").lower() == "yes"
            and own is not None
            and own.gid == existing.gid
            and not any(a.gid == own.gid for a in self.accounts)
        ):
            self.groups.remove(own)

    def add_group(self, group: Group, where: str) -> None:
        existing = self.group(group.name)
        if existing is not None:
            if group.gid is not None and group.gid != existing.gid:
                raise ConflictError(
                    f"{where}: group {group.name!r} already exists with gid {existing.gid}, "
                    f"not {group.gid}; drop gid from the config or pick another name"
                )
            password = group.password_hash
            if password is not None and (password or NO_PASSWORD) != existing.password:
                self.commands.append(
                    ["groupmod", "--password", password or NO_PASSWORD, group.name]
                )
            return
        used = {g.gid for g in self.groups}
        if group.gid is not None and group.gid in used:
            raise ConflictError(f"{where}: gid {group.gid} is already used by another group")
        gid = group.gid if group.gid is not None else self._new_id(used, bool(group.system), "GID")
        self.groups.append(GroupEntry(group.name, gid))
        argv = ["groupadd", "--password", group.password_hash or NO_PASSWORD]
        if group.gid is not None:
            argv += ["--gid", str(group.gid)]
        if group.system:
            argv.append("--system")
        self.commands.append([*argv, group.name])

    def add_user(self, user: User, where: str) -> tuple[Account, bool]:
        """The user's account after the change (new ids predicted), and whether it is new."""
        existing = self.account(user.name)
        if existing is not None:
            return self._update_user(existing, user, where), False
        used = {a.uid for a in self.accounts}
        if user.uid is not None and user.uid in used:
            raise ConflictError(f"{where}: uid {user.uid} is already used by another user")
        uid = user.uid if user.uid is not None else self._new_id(used, bool(user.system), "UID")
        gid = self._primary_gid(user, uid, where)
        home = user.home_dir or f"{self.login_defs['HOME'].rstrip('/')}/{user.name}"
        account = Account(user.name, uid, gid, home)
        self.accounts.append(account)
        self._check_supplementary(user, where)
        argv = ["useradd", "--password", user.password_hash or NO_PASSWORD]
        argv += ["--no-create-home"] if user.no_create_home else ["--create-home"]
        options = (
            ("--home-dir", user.home_dir),
            ("--uid", None if user.uid is None else str(user.uid)),
            ("--comment", user.gecos),
            ("--gid", user.primary_group),
            ("--groups", ",".join(user.groups) or None),
            ("--shell", user.shell),
        )
        argv += [item for key, value in options if value for item in (key, value)]
        flags = (
            ("--no-user-group", user.no_user_group),
            ("--system", user.system),
            ("--no-log-init", user.no_log_init),
        )
        argv += [flag for flag, wanted in flags if wanted]
        self.commands.append([*argv, user.name])
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
        if user.no_user_group or self.login_defs.get("USERGROUPS_ENAB", "yes") != "yes":
            users = self.group("users")
            return users.gid if users else 100
        if self.group(user.name) is not None:
            raise ConflictError(
                f"{where}: a group named {user.name!r} already exists; set primaryGroup "
                "or noUserGroup"
            )
        used = {g.gid for g in self.groups}
        gid = uid if uid not in used else self._new_id(used, bool(user.system), "GID")
        self.groups.append(GroupEntry(user.name, gid))
        return gid

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
        # --append: the image's groups of an account (core's adm, systemd-journal) stay.
        missing = [g for g in user.groups if user.name not in self._members(g)]
        self._check_supplementary(user, where)
        password = None if user.password_hash is None else user.password_hash or NO_PASSWORD
        options = (
            ("--password", password, existing.password),
            ("--comment", user.gecos, existing.gecos),
            ("--shell", user.shell, existing.shell),
        )
        # Only what differs: applying the same config again changes nothing.
        argv = [item for key, value, now in options if value and value != now
                for item in (key, value)]  # fmt: skip
        if missing:
            argv += ["--append", "--groups", ",".join(missing)]
        if argv:
            self.commands.append(["usermod", *argv, user.name])
        return existing

    def _members(self, group_name: str) -> tuple[str, ...]:
        group = self.group(group_name)
        return group.members if group else ()

    def _check_supplementary(self, user: User, where: str) -> None:
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


def check_account_tools() -> None:
    missing = [tool for tool in ACCOUNT_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ApplyError(f"{', '.join(missing)} not found: accounts need Debian's passwd package")


def run_account_tools(commands: list[list[str]], root: TargetRoot) -> None:
    """Run each tool against the root, in the plan's order (groups before users)."""
    for tool, *args in commands:
        done = subprocess.run(
            [tool, "--root", str(root.path), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()
            raise ApplyError(
                f"{tool} {args[-1]} failed (exit {done.returncode}): "
                f"{detail[-1] if detail else 'no message'}"
            )


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1  # a malformed entry: never matches a real id


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


def _settings(path: Path, separator: str) -> dict[str, str]:
    """KEY VALUE (login.defs) or KEY=VALUE (default/useradd) lines."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lstrip().startswith("#"):
                continue
            if separator == "=":
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip()
            else:
                parts = line.split()
                if len(parts) >= 2:
                    values[parts[0]] = parts[1]
    return values
