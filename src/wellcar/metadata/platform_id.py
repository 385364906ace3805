"""Which platform a node runs on, as its kernel command line says (stdlib only).

Two spellings name the platform, both written by the platform image's boot entry
(wellcar.image.platforms): Ignition's ``ignition.platform.id=`` (``aws``, ``gcp``, ...) and
Flatcar's ``flatcar.oem.id=`` (``ec2``, ``gce``, ...; ``coreos.oem.id=`` is its older
name), so units written for Flatcar (``ConditionKernelCommandLine=flatcar.oem.id=ec2``)
keep working. This table is the one place the two names of a platform are paired.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

IGNITION_KEY = "ignition.platform.id"
OEM_KEYS = ("flatcar.oem.id", "coreos.oem.id")


@dataclass(frozen=True)
class PlatformId:
    ignition: str  # Ignition's platform id
    oem: str  # Flatcar's OEM id (flatcar.oem.id=)

    def kernel_arguments(self) -> tuple[str, ...]:
        return (f"{IGNITION_KEY}={self.ignition}", f"{OEM_KEYS[0]}={self.oem}")


PLATFORM_IDS: tuple[PlatformId, ...] = (
    PlatformId("aws", "ec2"),
    PlatformId("gcp", "gce"),
    PlatformId("azure", "azure"),
    PlatformId("openstack", "openstack"),
    PlatformId("digitalocean", "digitalocean"),
    PlatformId("hetzner", "hetzner"),
    PlatformId("vmware", "vmware"),
    PlatformId("qemu", "qemu"),
    PlatformId("proxmoxve", "proxmoxve"),
    PlatformId("metal", "metal"),
)


def platform_by_ignition_id(name: str) -> PlatformId:
    for known in PLATFORM_IDS:
        if known.ignition == name:
            return known
    raise KeyError(name)


def platform_from_cmdline(cmdline: str) -> PlatformId | None:
    """The platform the command line names (Ignition's key first), or None."""
    try:
        words = shlex.split(cmdline)
    except ValueError:
        words = cmdline.split()
    values = dict(word.partition("=")[::2] for word in words if "=" in word)
    wanted = values.get(IGNITION_KEY)
    for known in PLATFORM_IDS:
        if wanted == known.ignition:
            return known
    for key in OEM_KEYS:
        for known in PLATFORM_IDS:
            if values.get(key) == known.oem:
                return known
    return None
