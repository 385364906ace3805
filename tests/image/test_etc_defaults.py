"""The first-boot /etc: what a node needs before provisioning stays, every other default
moves to /usr/share/factory/etc and comes back after provisioning, filling gaps only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.image.etc_defaults import (
    ETC_FACTORY_TMPFILES,
    FACTORY_ETC,
    first_boot_etc,
    split_first_boot_etc,
)

from .conftest import needs_tools


def make_etc(root: Path) -> Path:
    etc = root / "etc"
    for name in ("ssh/sshd_config.d", "systemd/system/multi-user.target.wants", "wellcar",
                 "sudoers.d", "default", "skel", "pam.d"):  # fmt: skip
        (etc / name).mkdir(parents=True)
    texts = {
        "passwd": "root:x:0:0::/root:/bin/bash\n", "shadow": "root:*:1::::::\n",
        "login.defs": "UID_MIN 1000\n", "default/useradd": "SHELL=/bin/sh\n",
        "pam.d/login": "auth required pam_unix.so\n", "hostname": "localhost\n",
        "motd": "Wellcar\n", "hosts": "127.0.0.1 localhost\n",
        "ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n",
        "ssh/sshd_config.d/host-keys.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\n",
        "systemd/timesyncd.conf": "[Time]\n", "wellcar/update.conf": "# GROUP=beta\n",
        "sudoers": "root ALL=(ALL) ALL\n", "sudoers.d/passwordless-sudo": "%sudo ALL\n",
        "machine-id": "", "fstab": "PARTLABEL=ROOT / ext4 defaults 0 1\n",
        "my file": "with a space\n",
    }  # fmt: skip
    for name, text in texts.items():
        (etc / name).write_text(text)
    (etc / "sudoers").chmod(0o440)
    (etc / "shadow").chmod(0o640)
    os.symlink("/usr/lib/systemd/system/a.service",
               etc / "systemd/system/multi-user.target.wants/a.service")  # fmt: skip
    os.symlink("wellcar", etc / "flatcar")
    os.symlink("/usr/share/zoneinfo/Etc/UTC", etc / "localtime")
    os.symlink("../usr/lib/os-release", etc / "os-release")
    return etc


def tree(path: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        body = os.readlink(p) if p.is_symlink() else p.read_text() if p.is_file() else "/"
        out[p.relative_to(path).as_posix()] = (st.st_mode, body)
    return out


def test_first_boot_etc_keeps_only_what_cannot_wait(tmp_path: Path) -> None:
    etc = make_etc(tmp_path)
    split = split_first_boot_etc(tmp_path, "wellcar")
    left = {p.relative_to(etc).as_posix() for p in etc.rglob("*")}
    assert left == {
        "passwd", "shadow", "login.defs", "default", "default/useradd", "skel", "pam.d",
        "pam.d/login", "machine-id", "fstab", "os-release", "flatcar", "wellcar", "systemd",
        "systemd/system", "systemd/system/multi-user.target.wants",
        "systemd/system/multi-user.target.wants/a.service",
    }  # fmt: skip
    # What configs write without overwrite (Flatcar's docs, Typhoon) is absent: theirs wins.
    for name in ("hostname", "motd", "systemd/timesyncd.conf", "wellcar/update.conf", "hosts",
                 "ssh/sshd_config", "localtime"):  # fmt: skip
        assert not (etc / name).exists() and not (etc / name).is_symlink(), name
    factory = tmp_path / FACTORY_ETC
    assert (factory / "motd").read_text() == "Wellcar\n"
    assert not (factory / "hostname").exists()  # generated at boot, never a file default
    reasons = dict(split.kept)
    assert set(reasons) >= {"passwd", "login.defs", "systemd/system", "flatcar"}
    assert all(reasons.values())
    assert "ssh" in split.moved and "motd" in split.moved


@needs_tools("systemd-tmpfiles")
@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfiles keeps owners: needs root")
def test_defaults_fill_only_the_gaps_after_provisioning(tmp_path: Path) -> None:
    etc = make_etc(tmp_path)
    expected = tree(etc)
    split_first_boot_etc(tmp_path, "wellcar")
    # What a config wrote at first boot, without overwrite:
    (etc / "motd").write_text("from the config\n")
    (etc / "hostname").write_text("node1\n")
    (etc / "ssh/sshd_config.d").mkdir(parents=True)
    (etc / "ssh/sshd_config.d/10-port.conf").write_text("Port 2222\n")
    os.symlink("/usr/share/zoneinfo/Europe/Berlin", etc / "localtime")
    conf = tmp_path / ETC_FACTORY_TMPFILES
    for _ in range(2):  # every boot; the second changes nothing
        done = subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(conf)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    got = tree(etc)
    assert got["motd"][1] == "from the config\n"
    assert got["hostname"][1] == "node1\n"
    assert got["localtime"][1] == "/usr/share/zoneinfo/Europe/Berlin"
    assert got["ssh/sshd_config.d/10-port.conf"][1] == "Port 2222\n"
    changed = {"motd", "hostname", "localtime", "ssh/sshd_config.d/10-port.conf"}
    # Everything else is back exactly as the build made it (modes too: sudoers 0440).
    assert {k: v for k, v in got.items() if k not in changed} == {
        k: v for k, v in expected.items() if k not in changed
    }


def test_every_declared_entry_has_a_reason() -> None:
    entries = first_boot_etc("wellcar")
    assert all(e.reason for e in entries)
    assert len({e.pattern for e in entries}) == len(entries)
    assert "hostname" not in {e.pattern for e in entries}
    shutil.which("true")  # keep imports used on every platform
