"""Branding a rootfs: os-release, the release and update.conf files, compatibility links.

File names and keys follow Flatcar's (``/usr/share/flatcar/release``, ``update.conf``) with
the brand's ID in place of ``flatcar``, and links from ``flatcar`` and ``coreos`` to it, as
Flatcar kept ``coreos`` links when it forked: tools and configs written for the ancestors
keep working. Debian's name must not appear where a user looks (os-release, issue, motd).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from wellcar.keyfiles import public_key_files

from .settings import BrandProfile, BuildSettings

ANCESTORS: tuple[str, ...] = ("flatcar", "coreos")


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def render_os_release(settings: BuildSettings) -> str:
    brand, version = settings.brand, str(settings.version)
    fields = {
        "NAME": brand.name,
        "ID": brand.id,
        "ID_LIKE": brand.id_like,
        "VERSION": version,
        "VERSION_ID": version,
        "BUILD_ID": f"{settings.epoch}",
        "PRETTY_NAME": f"{brand.pretty_name} {version}",
        "HOME_URL": brand.home_url,
        "BUG_REPORT_URL": brand.bug_report_url,
        f"{brand.prefix}_BOARD": brand.board,
    }
    return "".join(f"{key}={_quote(value)}\n" for key, value in fields.items() if value)


def render_release(settings: BuildSettings) -> str:
    brand = settings.brand
    return (
        f"{brand.prefix}_RELEASE_VERSION={settings.version}\n"
        f"{brand.prefix}_RELEASE_BOARD={brand.board}\n"
        f"{brand.prefix}_RELEASE_APPID={brand.app_id}\n"
    )


def render_update_conf(brand: BrandProfile) -> str:
    text = f"SERVER={brand.update_server}\nGROUP={brand.update_group}\n"
    if brand.release_repository:
        text += f"RELEASE_REPOSITORY={brand.release_repository}\n"
    return text


def render_etc_update_conf(brand: BrandProfile) -> str:
    # Only comments: the vendor's values in /usr/share win until the user sets some here.
    return (
        f"# Local overrides of /usr/share/{brand.id}/update.conf, for example:\n"
        "# GROUP=beta\n# SERVER=disabled\n# REBOOT_STRATEGY=off\n"
    )


def render_issue(settings: BuildSettings) -> str:
    return f"{settings.brand.pretty_name} {settings.version} \\n \\l\n\n"


def render_motd(settings: BuildSettings) -> str:
    return f"{settings.brand.pretty_name} {settings.version}\n{settings.brand.home_url}\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()  # Debian's /etc/os-release is a link; never write through it
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def apply_branding(rootfs: Path, settings: BuildSettings) -> None:
    """Write the brand's files into ``rootfs`` (before /etc defaults are captured)."""
    brand_id = settings.brand.id
    share = rootfs / "usr/share" / brand_id
    _write(rootfs / "usr/lib/os-release", render_os_release(settings))
    _link(rootfs / "etc/os-release", "../usr/lib/os-release")
    _write(share / "release", render_release(settings))
    _write(share / "update.conf", render_update_conf(settings.brand))
    _write(rootfs / "etc" / brand_id / "update.conf", render_etc_update_conf(settings.brand))
    for ancestor in ANCESTORS:
        if ancestor != brand_id:
            _link(rootfs / "usr/share" / ancestor, brand_id)
            _link(rootfs / "etc" / ancestor, brand_id)
    _write(rootfs / "etc/issue", render_issue(settings))
    _write(rootfs / "etc/issue.net", f"{settings.brand.pretty_name} {settings.version}\n")
    _write(rootfs / "etc/motd", render_motd(settings))
    # Debian's motd snippet prints the Debian licence notice at every login.
    (rootfs / "etc/update-motd.d/10-uname").unlink(missing_ok=True)
    if settings.brand.trust_root is not None:
        trust = share / "trust"
        trust.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(settings.brand.trust_root, trust / "root.json")
    if settings.brand.payload_key_dir is not None:
        keys = share / "update-payload-keys"
        keys.mkdir(parents=True, exist_ok=True)
        for pem in public_key_files(settings.brand.payload_key_dir):
            shutil.copyfile(pem, keys / pem.name)


def capture_etc_defaults(rootfs: Path, brand_id: str) -> Path:
    """Copy the built /etc to ``/usr/share/<id>/etc-defaults``: /usr then carries
    everything needed to populate an empty ROOT (factory reset, first boot of a disk
    provisioned with /usr only), as Flatcar keeps /usr/share/flatcar/etc."""
    target = rootfs / "usr/share" / brand_id / "etc-defaults"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(rootfs / "etc", target, symlinks=True)
    return target
