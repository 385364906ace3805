"""Flatcar's user model in the image: the ``core`` user, its groups, passwordless sudo.

On Flatcar, ``core`` (uid 500) exists on every node, has no password (locked: only ssh
keys, given by Ignition, let anyone in) and is in ``sudo``, ``docker``, ``wheel``,
``systemd-journal`` and ``adm``; members of ``sudo`` and ``wheel`` run sudo without a
password. Ignition configs rely on all of it (``groups: [sudo, docker, wheel]``, keys
added to ``core``), so the image has the same, made with Debian's own tools run against
the root (``groupadd --root``, ``useradd --root``, ``usermod --root``) before /etc is
captured as the /etc defaults, so that the booted node's /etc has them.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ImageContentError
from .tools import run_tool

CORE_USER = "core"
CORE_UID = 500  # Flatcar's: files and configs written for Flatcar name it
CORE_GECOS = "Container Linux user"
DEFAULT_SHELL = "/bin/bash"  # for users made later (Ignition's), as on Flatcar
# Debian has sudo, adm and systemd-journal (base-passwd, systemd) and docker.io adds
# docker; wheel is Flatcar's and made here. A missing one is made as a system group, so
# the user model does not depend on the package list.
CORE_GROUPS: tuple[str, ...] = ("sudo", "docker", "wheel", "systemd-journal", "adm")
SUDO_GROUPS: tuple[str, ...] = ("sudo", "wheel")
# sudo reads every file in /etc/sudoers.d whose name has no "." and does not end in "~".
SUDOERS_DROPIN = "etc/sudoers.d/passwordless-sudo"
SUDOERS_MODE = 0o440


def render_sudoers() -> str:
    lines = "".join(f"%{group} ALL=(ALL:ALL) NOPASSWD: ALL\n" for group in SUDO_GROUPS)
    return (
        "# As on Flatcar: accounts have no passwords (ssh keys only), so the admin groups\n"
        f"# use sudo without one.\n{lines}"
    )


def _entries(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.split(":", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()}


def install_core_user(rootfs: Path, epoch: int, log: Path | None) -> None:
    """Make the groups, the ``core`` user (uid and gid 500, locked, home /home/core) and
    the sudoers drop-in in ``rootfs``; an existing ``core`` gets the groups added.
    ``epoch`` (SOURCE_DATE_EPOCH, which the shadow tools honour) dates the shadow
    entries, so a rebuild writes the same bytes."""
    etc = rootfs / "etc"
    if not (etc / "passwd").is_file():
        raise ImageContentError("node-setup", f"{etc}/passwd is missing: not a Debian root")
    root = f"--root={rootfs}"
    env = {"SOURCE_DATE_EPOCH": str(epoch)}
    groups = _entries(etc / "group")
    for group in CORE_GROUPS:
        if group not in groups:
            run_tool("node-setup", ["groupadd", root, "--system", group], log=log, env=env)
    if CORE_USER not in groups:
        run_tool("node-setup", ["groupadd", root, "--gid", str(CORE_UID), CORE_USER], log=log,
                 env=env)  # fmt: skip
    member_of = ",".join(CORE_GROUPS)
    if CORE_USER in _entries(etc / "passwd"):
        run_tool("node-setup", ["usermod", root, "--append", "--groups", member_of, CORE_USER],
                 log=log, env=env)  # fmt: skip
    else:
        # No --password: useradd leaves the shadow entry "!", a locked password.
        run_tool(
            "node-setup",
            ["useradd", root, "--uid", str(CORE_UID), "--gid", CORE_USER, "--create-home",
             "--shell", "/bin/bash", "--comment", CORE_GECOS, "--groups", member_of,
             CORE_USER],
            log=log, env=env,
        )  # fmt: skip
    # Flatcar's useradd gives new users bash (Debian's: /bin/sh); users a config creates
    # without a shell get what they would get on Flatcar. Debian's tool writes the default.
    run_tool("node-setup", ["useradd", "-D", root, "--shell", DEFAULT_SHELL], log=log, env=env)
    (etc / "default/useradd").chmod(0o644)  # Debian's mode; useradd -D leaves 0600
    dropin = rootfs / SUDOERS_DROPIN
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(render_sudoers(), encoding="utf-8")
    dropin.chmod(SUDOERS_MODE)
    if (rootfs / "usr/sbin/visudo").is_file():
        # A syntax error in a sudoers file disables sudo for everyone: check it with the
        # image's own visudo.
        run_tool("node-setup", ["chroot", str(rootfs), "visudo", "--check", "--quiet",
                                "--file", f"/{SUDOERS_DROPIN}"], log=log)  # fmt: skip
