"""systemd.units applied as Ignition does: Ignition's preset file, applied by systemd's own
`systemctl --root preset`; alias names resolved as systemd resolves them; units that exist
nowhere warned about; Flatcar's unit names checked at validation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.ignition.apply import apply_config
from wellcar.ignition.errors import ApplyError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.parse import check_config
from wellcar.ignition.units import PRESET_FILE

from .conftest import config_of, snapshot

pytestmark = pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl")

SSH_UNIT = """[Unit]
Description=OpenBSD Secure Shell server

[Service]
ExecStart=/usr/sbin/sshd -D

[Install]
WantedBy=multi-user.target
Alias=sshd.service
"""
HELLO = """[Service]
ExecStart=/bin/echo %i
[Install]
WantedBy=multi-user.target \\
  app.target
RequiredBy=other.target
Alias=hi@.service
Also=helper.socket
"""


def v34(**sections: object) -> dict[str, object]:
    return {"ignition": {"version": "3.4.0"}, **sections}


def apply(root: Path, data: dict[str, object]) -> list[str]:
    plan = apply_config(config_of(data), root, Fetcher(attempts=1))
    return plan.warnings


def links(root: Path) -> dict[str, str]:
    """Every symlink under /etc/systemd/system with its target."""
    etc = root / "etc/systemd/system"
    return {str(p.relative_to(etc)): os.readlink(p) for p in sorted(etc.rglob("*"))
            if p.is_symlink()}  # fmt: skip


@pytest.fixture
def units_root(root: Path) -> Path:
    """Debian's shape: ssh.service in /usr/lib with its alias link in /etc, as the
    openssh-server package's postinst leaves it; /lib is the merged-/usr link."""
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    (lib / "ssh.service").write_text(SSH_UNIT)
    (lib / "helper.socket").write_text(
        "[Socket]\nListenStream=9\n[Install]\nWantedBy=sockets.target\n"
    )
    (lib / "docker.socket").write_text("[Socket]\n[Install]\nWantedBy=sockets.target\n")
    done = subprocess.run(["systemctl", f"--root={root}", "enable", "ssh.service"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root


def test_enabling_is_systemctls_on_the_same_root(units_root: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(units_root, twin, symlinks=True)
    warnings = apply(units_root, v34(systemd={"units": [
        {"name": "hello@.service", "contents": HELLO},
        {"name": "hello@world.service", "enabled": True},
        {"name": "docker.socket", "enabled": True},
    ]}))  # fmt: skip
    assert warnings == []
    # The same by hand with systemd's tool on a copy: the links must be identical.
    etc = twin / "etc/systemd/system"
    (etc / "hello@.service").write_text(HELLO)
    subprocess.run(["systemctl", f"--root={twin}", "enable", "hello@world.service",
                    "docker.socket"], check=True, capture_output=True)  # fmt: skip
    assert links(units_root) == links(twin)
    made = links(units_root)
    # A continued WantedBy= line is two targets (not a directory named "\.wants").
    assert "app.target.wants/hello@world.service" in made
    assert "multi-user.target.wants/hello@world.service" in made
    assert "other.target.requires/hello@world.service" in made
    assert "sockets.target.wants/helper.socket" in made  # Also=
    assert not any("\\" in name for name in made)
    assert made["hi@world.service"] == "/etc/systemd/system/hello@.service"  # Alias=
    preset = (units_root / PRESET_FILE.lstrip("/")).read_text()
    assert preset == "enable hello@world.service\nenable docker.socket\n"


def test_flatcar_sshd_name_resolves_to_debians_ssh_without_a_loop(units_root: Path) -> None:
    apply(units_root, v34(systemd={"units": [{
        "name": "sshd.service", "enabled": True,
        "dropins": [{"name": "10-port.conf", "contents": "[Service]\nEnvironment=X=1\n"}],
    }]}))  # fmt: skip
    made = links(units_root)
    assert made["sshd.service"] == "/lib/systemd/system/ssh.service"  # Debian's alias, kept
    assert made["multi-user.target.wants/ssh.service"].endswith("/ssh.service")
    dropin = units_root / "etc/systemd/system/sshd.service.d/10-port.conf"
    assert dropin.read_text() == "[Service]\nEnvironment=X=1\n"
    assert "enable ssh.service" in (units_root / PRESET_FILE.lstrip("/")).read_text()


def test_disabling_an_alias_removes_its_links_as_systemd_does(units_root: Path) -> None:
    apply(units_root, v34(systemd={"units": [{"name": "sshd.service", "enabled": False}]}))
    assert links(units_root) == {}  # the wants link and the Alias= link


def test_masking_an_alias_masks_its_unit(units_root: Path) -> None:
    apply(units_root, v34(systemd={"units": [{"name": "sshd.service", "mask": True}]}))
    assert links(units_root)["ssh.service"] == "/dev/null"


def test_a_unit_written_by_storage_files_is_enabled(units_root: Path) -> None:
    unit = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    apply(units_root, v34(
        storage={"files": [{"path": "/etc/systemd/system/job.service",
                            "contents": {"source": "data:," + unit.replace("\n", "%0A")}}]},
        systemd={"units": [{"name": "job.service", "enabled": True}]},
    ))  # fmt: skip
    assert links(units_root)["multi-user.target.wants/job.service"] == (
        "/etc/systemd/system/job.service"
    )


def test_a_unit_that_exists_nowhere_is_a_warning_not_a_failure(units_root: Path) -> None:
    before = snapshot(units_root / "etc/systemd")
    warnings = apply(
        units_root, v34(systemd={"units": [{"name": "nope.service", "enabled": True}]})
    )
    assert warnings == [
        "$.systemd.units[0].enabled: nope.service exists neither in the image nor in the "
        "config; it is not enabled"
    ]
    assert snapshot(units_root / "etc/systemd") == before


def test_a_second_run_changes_nothing(units_root: Path) -> None:
    config = v34(systemd={"units": [{"name": "sshd.service", "enabled": True},
                                    {"name": "docker.socket", "enabled": True}]})  # fmt: skip
    apply(units_root, config)
    once = snapshot(units_root)
    apply(units_root, config)
    assert snapshot(units_root) == once


@pytest.mark.parametrize(
    ("unit", "says"),
    [
        ({"name": "update-engine.service", "mask": True}, "wellcar-agent.service"),
        ({"name": "locksmithd.service", "enabled": False}, "REBOOT_STRATEGY=off"),
        ({"name": "sshd.socket", "dropins": [{"name": "p.conf", "contents": "[Socket]\n"}]},
         "not socket-activated"),
        ({"name": "etcd-member.service", "enabled": True}, "ships no etcd"),
    ],
)  # fmt: skip
def test_flatcar_units_that_wellcar_lacks_are_refused_in_one_line(
    unit: dict[str, object], says: str
) -> None:
    import json

    report = check_config(json.dumps(v34(systemd={"units": [unit]})).encode())
    (error,) = report.errors
    assert error.path == "$.systemd.units[0].name" and says in error.message


def test_a_flatcar_unit_name_with_contents_is_the_configs_own_unit() -> None:
    import json

    unit = {"name": "etcd-member.service", "enabled": True,
            "contents": "[Service]\nExecStart=/bin/true\n"}  # fmt: skip
    assert not check_config(json.dumps(v34(systemd={"units": [unit]})).encode()).errors


def test_an_alias_systemd_refuses_fails_at_validation() -> None:
    import json

    unit = {"name": "hello@.service", "contents": "[Install]\nAlias=hi.service \\\n  x.socket\n"}
    report = check_config(json.dumps(v34(systemd={"units": [unit]})).encode())
    messages = [e.message for e in report.errors]
    assert messages == [
        "Alias=hi.service: an alias of hello@.service must be a template like hello@.service",
        "Alias=x.socket: an alias of hello@.service must end in .service",
    ]


def test_what_systemctl_refuses_fails_the_plan_with_nothing_written(units_root: Path) -> None:
    lib = units_root / "usr/lib/systemd/system"
    (lib / "bad@.service").write_text(
        "[Service]\nExecStart=/bin/true\n[Install]\nAlias=bad.service\n"
    )
    before = snapshot(units_root)
    with pytest.raises(ApplyError, match=r"^\$\.systemd\.units: systemd cannot enable .*bad"):
        apply(units_root, v34(
            storage={"files": [{"path": "/etc/motd", "contents": {"source": "data:,hi"}}]},
            systemd={"units": [{"name": "bad@x.service", "enabled": True},
                               {"name": "docker.socket", "enabled": True}]},
        ))  # fmt: skip
    assert snapshot(units_root) == before
