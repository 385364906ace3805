"""Checks before the first long step: every tool, every package, enough space.

A build takes minutes; a missing tool or a misspelt package found at the end of it wastes
them, so all of these are checked at once up front and reported together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from wellcar.disk.sizes import GiB, format_size
from wellcar.keyfiles import public_key_files
from wellcar.live.artifacts import LIVE_FILES

from .dev_keys import payload_trust_problems
from .errors import ImageContentError, MissingToolError
from .platforms import PLATFORMS, platform_files
from .settings import BuildSettings

# Host program -> the Debian package that provides it.
BUILD_TOOLS: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "apt-cache": "apt",
    "dpkg-query": "dpkg",
    "mkfs.erofs": "erofs-utils",
    "veritysetup": "cryptsetup-bin",
    "mkfs.vfat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "systemctl": "systemd",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "groupadd": "passwd",
    "useradd": "passwd",
    "usermod": "passwd",
    "grub-mkimage": "grub-common",  # with grub-pc-bin's modules: GRUB for BIOS machines
}
# What a build writes besides the /usr partition content: the rootfs tree, usr.img,
# disk.img (sparse, but its ROOT and ESP are real bytes), the payload and the work files.
SPACE_MARGIN = 2 * GiB


def missing_tools(tools: dict[str, str] = BUILD_TOOLS) -> list[str]:
    return [f"{tool} ({package})" for tool, package in tools.items() if not shutil.which(tool)]


def check_tools() -> None:
    missing = missing_tools()
    if missing:
        raise MissingToolError(
            "preflight",
            f"missing build tools: {', '.join(missing)}; install them (scripts/setup.sh does)",
        )


def unknown_packages(names: tuple[str, ...]) -> list[str]:
    """The requested packages (``name`` or ``name=version``) the apt lists do not know."""
    if not names:
        return []
    # One apt-cache call per package: with several names it fails as a whole when one is
    # unknown, and its stanzas do not say which ``name=version`` each one answered.
    known: set[str] = set()
    for name in names:
        result = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and "Package:" in result.stdout:
            known.add(name)
    return [name for name in names if name not in known]


def check_packages(settings: BuildSettings) -> None:
    unknown = unknown_packages(settings.all_packages)
    if unknown:
        raise ImageContentError(
            "preflight",
            f"unknown package(s): {', '.join(unknown)} (not in the apt lists; check the "
            "names and versions, or run apt-get update)",
        )


def required_space(settings: BuildSettings) -> int:
    return 2 * settings.usr_size + settings.root_size + settings.esp_size + SPACE_MARGIN


def check_space(settings: BuildSettings) -> None:
    directory = settings.output
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    needed = required_space(settings)
    if free < needed:
        raise ImageContentError(
            "preflight",
            f"not enough space in {directory}: the build needs about {format_size(needed)}, "
            f"{format_size(free)} is free; free some or choose another --output",
        )


def check_inputs(settings: BuildSettings) -> None:
    """Files the brand profile names must be there before the build starts, and the image
    must trust the key its payload is signed with."""
    brand = settings.brand
    problems = []
    if brand.trust_root is not None and not brand.trust_root.is_file():
        problems.append(f"trust-root {brand.trust_root} is not a file")
    if brand.payload_key_dir is not None and not public_key_files(brand.payload_key_dir):
        problems.append(f"payload-key-dir {brand.payload_key_dir} holds no *.pub or *.pem key")
    if settings.signing_key is not None and not settings.signing_key.is_file():
        problems.append(f"signing-key {settings.signing_key} is not a file")
    problems += [f"extra tree {tree} is not a directory" for tree in settings.extra_trees
                 if not tree.is_dir()]  # fmt: skip
    problems += payload_trust_problems(settings)
    if problems:
        raise ImageContentError("preflight", "; ".join(problems))


def preflight(settings: BuildSettings, *, packages: bool = True) -> None:
    check_inputs(settings)
    check_tools()
    if settings.wants_live_artifacts:  # the ISO (docs/live.md)
        missing = missing_tools({"xorriso": "xorriso", "zstd": "zstd", "mtype": "mtools"})
        if missing:
            raise MissingToolError("preflight", f"the live ISO needs {', '.join(missing)}")
    check_space(settings)
    if packages:
        check_packages(settings)


def output_names() -> tuple[str, ...]:
    """Every file a build leaves in its output folder (SHA256SUMS last: its presence says
    the build finished)."""
    return ("disk.img", "usr.img", "vmlinuz", "initrd.img", "update.payload", "packages.txt",
            "version.txt", *LIVE_FILES, "SHA256SUMS")  # fmt: skip


def remove_outputs(out: Path) -> None:
    for name in output_names():
        (out / name).unlink(missing_ok=True)
    # A platform image of an earlier build would otherwise sit next to this one's disk.
    for platform in PLATFORMS:
        for name in platform_files(platform):
            (out / name).unlink(missing_ok=True)
