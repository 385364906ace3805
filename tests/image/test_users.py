"""Flatcar's user model made with Debian's tools against a root: the core user, its
groups, passwordless sudo; and an Ignition config naming core merges with it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from wellcar.ignition.apply import apply_config
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.parse import parse_config
from wellcar.image.users import CORE_GROUPS, CORE_UID, SUDOERS_DROPIN, install_core_user

from .conftest import needs_tools

pytestmark = [
    needs_tools("useradd", "groupadd", "usermod"),
    # useradd --root chroots into the root
    pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root needs root"),
]
EPOCH = 1_700_000_000


def group_members(root: Path) -> dict[str, list[str]]:
    rows = (line.split(":") for line in (root / "etc/group").read_text().splitlines())
    return {row[0]: [m for m in row[3].split(",") if m] for row in rows}


@pytest.fixture
def debian_root(tmp_path: Path) -> Path:
    """A root with a Debian account database (this host's) without docker and wheel."""
    root = tmp_path / "root"
    (root / "etc/skel").mkdir(parents=True)
    for name in ("passwd", "shadow", "login.defs"):
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    for name in ("group", "gshadow"):
        lines = Path("/etc", name).read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.split(":")[0] not in ("docker", "wheel", "core")]
        (root / "etc" / name).write_text("".join(kept))
    passwd = [line for line in (root / "etc/passwd").read_text().splitlines(keepends=True)
              if not line.startswith("core:")]  # fmt: skip
    (root / "etc/passwd").write_text("".join(passwd))
    return root


def test_core_is_made_locked_in_its_groups_with_sudo(debian_root: Path) -> None:
    install_core_user(debian_root, EPOCH, None)
    passwd = (debian_root / "etc/passwd").read_text().splitlines()
    assert f"core:x:{CORE_UID}:{CORE_UID}:Container Linux user:/home/core:/bin/bash" in passwd
    shadow = dict(line.split(":", 1) for line in (debian_root / "etc/shadow").read_text().split())
    password, changed = shadow["core"].split(":")[:2]
    assert password == "!"  # locked: ssh keys only
    assert changed == str(EPOCH // 86400)  # SOURCE_DATE_EPOCH: reproducible
    members = group_members(debian_root)
    for group in ("sudo", "docker", "wheel", "systemd-journal", "adm"):
        assert "core" in members[group], group
    assert set(CORE_GROUPS) <= set(members)
    home = debian_root / "home/core"
    assert (home.stat().st_uid, home.stat().st_gid) == (CORE_UID, CORE_UID)
    dropin = debian_root / SUDOERS_DROPIN
    assert "%sudo ALL=(ALL:ALL) NOPASSWD: ALL" in dropin.read_text()
    assert dropin.stat().st_mode & 0o777 == 0o440
    # Users made later (by Ignition's useradd) get bash, as on Flatcar.
    defaults = debian_root / "etc/default/useradd"
    assert "SHELL=/bin/bash" in defaults.read_text().split()
    assert defaults.stat().st_mode & 0o777 == 0o644
    # Again (an existing core): nothing doubles.
    before = (debian_root / "etc/group").read_text()
    install_core_user(debian_root, EPOCH, None)
    assert (debian_root / "etc/group").read_text() == before


def test_ignition_naming_core_merges_with_it(debian_root: Path) -> None:
    install_core_user(debian_root, EPOCH, None)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5 me"
    config = {
        "ignition": {"version": "3.4.0"},
        "passwd": {
            "users": [
                {"name": "core", "sshAuthorizedKeys": [key], "groups": ["sudo", "docker", "wheel"]},
                {"name": "alice", "groups": ["sudo", "docker", "wheel"]},
            ]
        },
    }
    import json

    parsed = parse_config(json.dumps(config).encode()).config
    apply_config(parsed, debian_root, Fetcher(attempts=1), change_owner=True)
    passwd = (debian_root / "etc/passwd").read_text()
    assert passwd.count("\ncore:") + passwd.startswith("core:") == 1  # modified, not added
    keys = debian_root / "home/core/.ssh/authorized_keys"
    assert key in keys.read_text()
    members = group_members(debian_root)
    assert members["wheel"].count("core") == 1 and "alice" in members["wheel"]
