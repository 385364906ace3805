"""Flatcar's unit names that configs commonly use, and what each is on Wellcar (Debian's
units): it works under its Flatcar name, or a config that relies on Flatcar's unit (names
it without giving `contents`) is refused at validation with what to use instead."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlatcarUnit:
    name: str
    works: bool
    note: str  # how it works, or what to use instead


FLATCAR_UNITS: tuple[FlatcarUnit, ...] = (
    FlatcarUnit("sshd.service", True, "Debian's ssh.service, which has Alias=sshd.service"),
    FlatcarUnit(
        "sshd.socket",
        False,
        "sshd runs as ssh.service (Debian's, alias sshd.service), not socket-activated; "
        "customise sshd.service with a drop-in, or sshd in /etc/ssh/sshd_config.d/",
    ),
    FlatcarUnit("docker.service", True, "Debian's docker.io"),
    FlatcarUnit("docker.socket", True, "Debian's docker.io"),
    FlatcarUnit("containerd.service", True, "Debian's containerd"),
    FlatcarUnit("systemd-timesyncd.service", True, "Debian's systemd-timesyncd"),
    FlatcarUnit("systemd-networkd.service", True, "systemd's"),
    FlatcarUnit(
        "update-engine.service",
        False,
        "updates are done by the agent, wellcar-agent.service (update_engine and locksmith "
        "in one): mask or disable that unit, or set SERVER=disabled in "
        "/etc/flatcar/update.conf",
    ),
    FlatcarUnit(
        "locksmithd.service",
        False,
        "reboots after updates are the agent's (wellcar-agent.service): set "
        "REBOOT_STRATEGY=off (or etcd-lock, or a FleetLock server) in /etc/flatcar/update.conf",
    ),
    FlatcarUnit(
        "etcd-member.service",
        False,
        "Wellcar ships no etcd: give the unit's contents (e.g. etcd in a container)",
    ),
    FlatcarUnit(
        "flanneld.service",
        False,
        "Wellcar ships no flannel: give the unit's contents (e.g. flannel in a container)",
    ),
)

BY_NAME = {unit.name: unit for unit in FLATCAR_UNITS}


def refused(name: str) -> FlatcarUnit | None:
    """The entry for a Flatcar unit name that does not exist on Wellcar, if name is one."""
    unit = BY_NAME.get(name)
    return unit if unit is not None and not unit.works else None
