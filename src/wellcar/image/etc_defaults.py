"""The first-boot /etc: only what is needed before provisioning ends; every other default
lives under /usr and fills the gaps after Ignition, as on Flatcar.

On Flatcar, Ignition writes into an almost empty /etc and the distribution's defaults are
copied in afterwards, so a config's file always wins and `overwrite: false` (the norm in
Flatcar's docs and Typhoon: /etc/hostname, /etc/motd, /etc/systemd/timesyncd.conf) works.
Wellcar provisions in the running system, so /etc cannot be empty, but it holds only the
entries of ``FIRST_BOOT_ETC`` (each with the reason it is needed that early). The build
moves everything else to ``/usr/share/factory/etc`` (systemd's place for factory
defaults) and writes one tmpfiles.d line per node (``C`` for files and directories, ``L``
for links) to ``ETC_FACTORY_TMPFILES``, outside tmpfiles.d so the early
systemd-tmpfiles-setup does not apply it: the ``<brand>-etc-factory.service`` unit applies
it after provisioning, on every boot, creating only what is missing. ``/etc/hostname`` is
not shipped at all: the hostname comes from DHCP or a config, else systemd's fallback.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .branding import ANCESTORS

FACTORY_ETC = "usr/share/factory/etc"
ETC_FACTORY_TMPFILES = "usr/lib/wellcar/etc-factory.conf"
GENERATED_AT_BOOT = {"hostname": "DHCP, a config or systemd's fallback hostname sets it"}


@dataclass(frozen=True)
class EtcEntry:
    pattern: str  # a path relative to /etc, fnmatch wildcards allowed
    reason: str
    subtree: bool = True  # False: the directory itself stays, its contents are defaults


def first_boot_etc(brand_id: str) -> tuple[EtcEntry, ...]:
    """What /etc holds when provisioning runs, each with why it cannot wait."""
    accounts = "accounts: read from the first process on; Ignition's useradd edits them"
    early = "read at sysinit, before provisioning runs"
    lookups = "name and service lookups of early units and of provisioning's own fetches"
    return (
        EtcEntry(".wellcar-first-boot", "the first-boot flag provisioning tests"),
        EtcEntry("machine-id", "empty: systemd initialises it on the first boot"),
        EtcEntry("os-release", "link to /usr/lib/os-release, read by systemd at start"),
        EtcEntry("fstab", "systemd's fstab generator mounts ROOT, /boot, /oem from it"),
        EtcEntry("mtab", "link to /proc/self/mounts for mount tools"),
        *(EtcEntry(name, accounts) for name in (
            "passwd", "passwd-", "group", "group-", "shadow", "shadow-", "gshadow",
            "gshadow-", ".pwd.lock")),
        EtcEntry("subuid*", "subordinate ids: useradd gives new users ranges only if it exists"),
        EtcEntry("subgid*", "subordinate ids: useradd gives new users ranges only if it exists"),
        EtcEntry("login.defs", "useradd's id ranges, HOME_MODE, USERGROUPS_ENAB"),
        EtcEntry("default", "useradd's defaults; read by units that start before provisioning"),
        EtcEntry("skel", "useradd --create-home copies it into new homes"),
        EtcEntry("pam.d", "PAM: any service with PAMName= may start before provisioning ends"),
        EtcEntry("security", "PAM modules' settings (limits, namespaces), as pam.d"),
        *(EtcEntry(name, lookups) for name in (
            "nsswitch.conf", "host.conf", "gai.conf", "resolv.conf", "networks",
            "protocols", "services", "rpc")),
        EtcEntry("ssl", "TLS trust for https config sources"),
        EtcEntry("ca-certificates", "TLS trust for https config sources"),
        EtcEntry("ca-certificates.conf", "TLS trust for https config sources"),
        EtcEntry("ld.so.*", "the dynamic linker, from the first process on"),
        EtcEntry("alternatives", "commands in /usr/bin link through it"),
        EtcEntry("python3*", "python3 reads it at start; provisioning is Python"),
        EtcEntry("mke2fs.conf", "mkfs.ext4, run by provisioning's filesystems stage"),
        EtcEntry("systemd", "holds the enablement below", subtree=False),
        EtcEntry("systemd/system", "units enabled and masked by the build, read at start"),
        EtcEntry("systemd/user", "user units enabled by the build"),
        *(EtcEntry(name, early) for name in (
            "udev", "modprobe.d", "modules", "modules-load.d", "sysctl.conf", "sysctl.d",
            "binfmt.d", "tmpfiles.d", "apparmor", "apparmor.d", "dbus-1")),
        EtcEntry("init.d", "systemd's SysV generator reads it when systemd starts"),
        EtcEntry("rc?.d", "systemd's SysV generator reads it when systemd starts"),
        EtcEntry(brand_id, "update.conf's directory; its file is a default", subtree=False),
        *(EtcEntry(name, f"link to {brand_id}: Flatcar's paths land in the brand's directory")
          for name in ANCESTORS if name != brand_id),
    )  # fmt: skip


def _match(relative: str, entries: tuple[EtcEntry, ...]) -> EtcEntry | None:
    return next((e for e in entries if fnmatch.fnmatchcase(relative, e.pattern)), None)


def _holds_kept(relative: str, entries: tuple[EtcEntry, ...]) -> bool:
    """Whether a kept entry lies below the directory relative."""
    return any(e.pattern.startswith(relative + "/") for e in entries)


@dataclass(frozen=True)
class EtcSplit:
    kept: tuple[tuple[str, str], ...]  # (path under /etc, reason)
    moved: tuple[str, ...]  # top-most paths moved to the factory tree


def split_first_boot_etc(rootfs: Path, brand_id: str) -> EtcSplit:
    """Move every /etc entry that can wait to /usr/share/factory/etc and write the
    tmpfiles lines that put it back after provisioning; returns what stayed and why."""
    entries = first_boot_etc(brand_id)
    etc, factory = rootfs / "etc", rootfs / FACTORY_ETC
    if factory.exists():
        shutil.rmtree(factory)
    factory.mkdir(parents=True)
    shutil.copystat(etc, factory)
    kept: list[tuple[str, str]] = []
    moved: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for path in sorted(directory.iterdir()):
            relative = f"{prefix}{path.name}"
            entry = _match(relative, entries)
            is_dir = path.is_dir() and not path.is_symlink()
            if relative in GENERATED_AT_BOOT:
                path.unlink()
            elif entry is not None and (entry.subtree or not is_dir):
                kept.append((relative, entry.reason))
            elif is_dir and (entry is not None or _holds_kept(relative, entries)):
                if entry is not None:
                    kept.append((relative, entry.reason))
                target = factory / relative
                target.mkdir(parents=True, exist_ok=True)
                shutil.copystat(path, target)
                walk(path, relative + "/")
            else:
                (factory / relative).parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, factory / relative)
                moved.append(relative)

    walk(etc, "")
    tmpfiles = rootfs / ETC_FACTORY_TMPFILES
    tmpfiles.parent.mkdir(parents=True, exist_ok=True)
    tmpfiles.write_text(render_tmpfiles(factory), encoding="utf-8")
    return EtcSplit(tuple(kept), tuple(moved))


def render_tmpfiles(factory: Path) -> str:
    """One line per node of the factory tree, parents first: `C` copies a file or a
    directory (with modes and owners) from /usr/share/factory when it is missing in /etc,
    `L` makes a missing link. Directories that also hold kept entries are only copied
    into where they are missing, so a config's own files are never replaced."""
    lines = ["# Wellcar: /etc defaults, applied after provisioning (docs/ignition.md)."]
    for path in sorted(factory.rglob("*")):
        relative = path.relative_to(factory).as_posix()
        if path.is_symlink():
            lines.append(f"L {_escape('/etc/' + relative)} - - - - {_escape(os.readlink(path))}")
        else:
            lines.append(f"C {_escape('/etc/' + relative)} - - - -")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """tmpfiles.d's quoting: "%%" for "%", and double quotes (with backslash escapes)
    around a word that holds white space, quotes or backslashes."""
    out = text.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\" for c in out):
        return '"' + out.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return out
