"""A root made as `wellcar build` makes one, in seconds and without mmdebstrap: Debian's
base accounts (base-passwd's master files, shadowed by pwconv/grpconv --root), the image's
own steps (branding, Flatcar's core made by useradd --root, the node's units enabled by
systemctl --root), Debian's unit files (systemd's from this host; openssh-server's,
docker.io's and containerd's from the build's package cache when it holds them, enabled
as their maintainer scripts enable them), and the first-boot /etc split the build makes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from wellcar.image.branding import apply_branding
from wellcar.image.etc_defaults import split_first_boot_etc
from wellcar.image.node_setup import FIRST_BOOT_FLAG, render_units
from wellcar.image.settings import BuildSettings
from wellcar.image.users import install_core_user

from ..system.builds import package_cache

SYSTEMD_UNITS = Path("/usr/lib/systemd/system")
# Packages of the image whose units the corpus names: (package, units enabled by postinst)
PACKAGE_UNITS = (
    ("openssh-server", ("ssh.service",)),
    ("docker.io", ("docker.service", "docker.socket")),
    ("containerd", ("containerd.service",)),
)
DEBIAN_ETC = ("login.defs", "default/useradd", "skel", "nsswitch.conf", "hosts", "motd",
              "issue", "systemd/timesyncd.conf", "systemd/journald.conf")  # fmt: skip


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _unpack(deb: Path, into: Path) -> None:
    """The unit files and /etc of a Debian package, as dpkg would install them."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                             capture_output=True).stdout  # fmt: skip
    # Not /etc/init.d: SysV scripts would send systemctl to update-rc.d, not needed here.
    subprocess.run(["tar", "-x", "--keep-directory-symlink", "--exclude=./etc/init.d",
                    "-C", str(into), "--wildcards",
                    "./lib/systemd/*",
                    "./usr/lib/systemd/*", "./etc/*"], input=listing, check=False,
                   capture_output=True)  # fmt: skip


def packaged_units() -> list[Path]:
    cache = package_cache()
    found = []
    for package, _units in PACKAGE_UNITS:
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if debs:
            found.append(debs[-1])
    return found


def make_image_root(root: Path) -> Path:
    etc = root / "etc"
    (etc / "systemd").mkdir(parents=True)
    for name in ("home", "root", "var/lib", "usr/lib", "usr/share"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "lib").symlink_to("usr/lib")  # merged /usr, as Debian's
    shutil.copyfile("/usr/share/base-passwd/passwd.master", etc / "passwd")
    shutil.copyfile("/usr/share/base-passwd/group.master", etc / "group")
    for name in DEBIAN_ETC:
        source = Path("/etc") / name
        if source.is_dir():
            shutil.copytree(source, etc / name, symlinks=True)
        elif source.is_file():
            (etc / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, etc / name)
    for name in ("subuid", "subgid"):
        (etc / name).write_text("")  # as the passwd package's postinst leaves them
    _run("pwconv", "--root", str(root))
    _run("grpconv", "--root", str(root))
    shadow_gid = next(int(line.split(":")[2]) for line in (etc / "group").read_text().split()
                      if line.startswith("shadow:"))  # fmt: skip
    for name in ("shadow", "gshadow"):  # as the passwd package's postinst leaves them
        os.chown(etc / name, 0, shadow_gid)
        (etc / name).chmod(0o640)
    shutil.copytree(SYSTEMD_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    enabled: list[str] = []
    for deb in packaged_units():
        _unpack(deb, root)
        package = deb.name.split("_")[0]
        enabled += next(units for name, units in PACKAGE_UNITS if name == package)
    settings = BuildSettings()
    (root / "usr/lib/os-release").write_text('ID="debian"\n')
    apply_branding(root, settings)
    install_core_user(root, settings.epoch, None)
    units = render_units(settings)
    for name, text in units.items():
        (root / "usr/lib/systemd/system" / name).write_text(text)
    _run("systemctl", f"--root={root}", "enable", *units, "systemd-networkd.service",
         "systemd-timesyncd.service", *enabled)  # fmt: skip
    _run("systemctl", f"--root={root}", "mask", "systemd-bless-boot.service")
    (etc / "machine-id").write_text("")
    split_first_boot_etc(root, settings.brand.id)
    (root / FIRST_BOOT_FLAG).write_text("")
    return root


def has_unit(root: Path, name: str) -> bool:
    return any((root / d / name).exists() or (root / d / name).is_symlink()
               for d in ("etc/systemd/system", "usr/lib/systemd/system"))  # fmt: skip
