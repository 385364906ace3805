"""Butane's with_mount_unit: the unit its template makes (fsck dependency named as
systemd-escape names the device), swap units with options, and a user unit of the same
name merged over the generated one."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from wellcar.ignition.butane import transpile

CONFIG = """variant: flatcar
version: 1.1.0
storage:
  filesystems:
    - device: /dev/disk/by-label/data-1
      format: xfs
      path: /var/lib/data
      label: data-1
      mount_options: [noatime, nodev]
      with_mount_unit: true
    - device: /dev/vdc
      format: swap
      mount_options: [pri=5]
      with_mount_unit: true
"""


def escaped(path: str, suffix: str) -> str:
    tool = shutil.which("systemd-escape")
    if tool is None:
        pytest.skip("needs systemd-escape")
    done = subprocess.run([tool, "--path", f"--suffix={suffix}", path],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def test_a_mount_unit_waits_for_the_devices_fsck() -> None:
    units = {u["name"]: u for u in transpile(CONFIG).config["systemd"]["units"]}
    mount = units[escaped("/var/lib/data", "mount")]
    fsck = f"systemd-fsck@{escaped('/dev/disk/by-label/data-1', 'service')}"
    lines = mount["contents"].splitlines()
    assert f"Requires={fsck}" in lines and f"After={fsck}" in lines
    assert "Options=noatime,nodev" in lines and "RequiredBy=local-fs.target" in lines
    swap = units[escaped("/dev/vdc", "swap")]
    assert "Options=pri=5" in swap["contents"].splitlines()
    assert mount["enabled"] is True and swap["enabled"] is True


def test_a_user_unit_of_the_same_name_is_merged_over_it() -> None:
    name = escaped("/var/lib/data", "mount")
    user = f"""systemd:
  units:
    - name: {name}
      enabled: false
      dropins:
        - name: timeout.conf
          contents: "[Mount]\\nTimeoutSec=30\\n"
"""
    units = [u for u in transpile(CONFIG + user).config["systemd"]["units"] if u["name"] == name]
    assert len(units) == 1
    (unit,) = units
    assert unit["enabled"] is False  # the user's field wins
    assert unit["dropins"][0]["name"] == "timeout.conf"
    assert "[Mount]" in unit["contents"]  # the generated contents fill what the user left
