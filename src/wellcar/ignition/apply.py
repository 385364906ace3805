"""Applying a resolved config to a target root, Ignition's way: plan everything first
(fetch every resource, resolve owners and paths, find every conflict), then write. A config
that cannot be applied fails in the plan and leaves the machine as it was."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from wellcar.ignition.disks import apply_disk_commands, make_filesystem, plan_disk
from wellcar.ignition.errors import ApplyError, UnsafePathError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.nodes import plan_nodes
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.steps import MakeDirectory, Ownership, Step, WriteFile
from wellcar.ignition.types import Config, Filesystem, User
from wellcar.ignition.units import UnitSwitches, apply_switches, plan_units, rehearse_switches
from wellcar.ignition.users import Account, AccountDb, check_account_tools, run_account_tools

SSH_KEYS_FRAGMENT = "ignition"  # ~/.ssh/authorized_keys.d/ignition, as on Flatcar
MOUNTABLE = ("ext4", "btrfs", "xfs", "vfat")


@dataclass
class Plan:
    disk_commands: list[list[str]] = field(default_factory=list)
    filesystems: list[tuple[str, Filesystem]] = field(default_factory=list)
    accounts: AccountDb = field(default_factory=AccountDb)
    steps: list[Step] = field(default_factory=list)
    units: UnitSwitches = field(default_factory=UnitSwitches)
    warnings: list[str] = field(default_factory=list)


def _plan_ssh_keys(user: User, account: Account, root: TargetRoot, where: str) -> list[Step]:
    keys = [k.strip() for k in user.ssh_authorized_keys if k.strip()]
    if not keys:
        return []
    try:
        home = root.resolve(account.home, follow_last=True)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{where}.homeDir: {exc}") from None
    owner = Ownership(user=user.name, primary_of=user.name)
    ssh = home / ".ssh"
    fragment = "".join(f"{k}\n" for k in keys).encode()
    # sshd reads ~/.ssh/authorized_keys only; keep what is there and add the new keys.
    current = ssh / "authorized_keys"
    lines = current.read_text().splitlines() if current.is_file() else []
    merged = "".join(f"{line}\n" for line in lines + [k for k in keys if k not in lines])
    return [
        MakeDirectory(ssh, 0o700, owner, replace_node=False),
        MakeDirectory(ssh / "authorized_keys.d", 0o700, owner, replace_node=False),
        WriteFile(ssh / "authorized_keys.d" / SSH_KEYS_FRAGMENT, fragment, b"", 0o600, owner,
                  replace_node=True),
        WriteFile(current, merged.encode(), b"", 0o600, owner, replace_node=True),
    ]  # fmt: skip


def plan_config(config: Config, root: TargetRoot, fetcher: Fetcher) -> Plan:
    plan = Plan(accounts=AccountDb.load(root))
    for i, disk in enumerate(config.storage.disks):
        plan.disk_commands += plan_disk(disk, f"$.storage.disks[{i}]")
    plan.filesystems = [
        (f"$.storage.filesystems[{i}]", fs) for i, fs in enumerate(config.storage.filesystems)
    ]
    db = plan.accounts
    # Users go before groups when removing (a group must lose its users first); otherwise
    # groups come first, as Ignition creates them.
    for i, user in enumerate(config.passwd.users):
        if user.should_exist is False:
            db.remove_user(user.name, f"$.passwd.users[{i}]")
    for i, group in enumerate(config.passwd.groups):
        if group.should_exist is False:
            db.remove_group(group.name, f"$.passwd.groups[{i}]")
        else:
            db.add_group(group, f"$.passwd.groups[{i}]")
    for i, user in enumerate(config.passwd.users):
        where = f"$.passwd.users[{i}]"
        if user.should_exist is False:
            continue
        account, _created = db.add_user(user, where)
        plan.steps += _plan_ssh_keys(user, account, root, where)
    if db.commands:
        check_account_tools()
    plan.steps += plan_nodes(config.storage, root, db, fetcher)
    unit_steps, plan.units = plan_units(config.systemd.units, config.storage, root, plan.warnings)
    plan.steps += unit_steps
    rehearse_switches(plan.units, plan.steps, root)
    return plan


def _mount(fs: Filesystem, root: TargetRoot) -> Path | None:
    if fs.path is None or fs.format not in MOUNTABLE:
        return None
    target = root.resolve(fs.path)
    target.mkdir(parents=True, exist_ok=True)
    options = ["-o", ",".join(fs.mount_options)] if fs.mount_options else []
    done = subprocess.run(
        ["mount", "-t", str(fs.format), *options, fs.device, str(target)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ApplyError(f"cannot mount {fs.device} on {fs.path}: {done.stderr.strip()}")
    return target


def execute(plan: Plan, root: TargetRoot, change_owner: bool) -> None:
    apply_disk_commands(plan.disk_commands)
    mounted: list[Path] = []
    try:
        for where, fs in plan.filesystems:
            make_filesystem(fs, where)
            mountpoint = _mount(fs, root)
            if mountpoint is not None:
                mounted.append(mountpoint)
        run_account_tools(plan.accounts.commands, root)
        owners = AccountDb.load(root) if change_owner else None
        for step in plan.steps:
            step.run(owners)
        apply_switches(plan.units, root)
    finally:
        for mountpoint in reversed(mounted):
            subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)


def apply_config(
    config: Config, root: Path, fetcher: Fetcher | None = None, *, change_owner: bool = True
) -> Plan:
    """Plan, then write config into root; returns the plan (its warnings included)."""
    target = TargetRoot(root)
    plan = plan_config(config, target, fetcher or Fetcher())
    execute(plan, target, change_owner)
    return plan
