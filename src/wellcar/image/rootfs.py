"""The root filesystem tree: mmdebstrap, the package manifest, and Wellcar's own code.

mmdebstrap runs in root mode into a plain directory. Downloaded packages are kept in
``package_cache`` outside the repository: a setup hook copies the cache into the chroot's
apt archive directory before the download step (``--skip=download/empty`` lets apt start
with a non-empty archive directory, and it downloads only what is missing) and a customize
hook copies the archive directory back before mmdebstrap's cleanup empties it, so a
second build of the same package set downloads nothing (Essential packages included:
``--skip=essential/unlink``) and the image carries no .debs.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

import wellcar
from wellcar.packages.errors import PackageError
from wellcar.packages.image_origin import (
    check_image_origin,
    mmdebstrap_arguments,
    repository_source,
)

from .errors import ImageContentError
from .settings import BuildSettings
from .tools import run_tool

# Like Flatcar, ship no manual pages, translations or documentation; the copyright files
# stay, as Debian's licences require.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
# Runtime dependencies of Wellcar that bookworm does not package at a version the code
# works with; copied from the build environment (all pure Python). The others come from
# Debian (python3-httpx, -rich, -cryptography, -zstandard; see DEFAULT_PACKAGES).
VENDORED: tuple[str, ...] = ("typer", "click", "shellingham", "annotated_doc", "rich",
                              "tuf", "securesystemslib", "urllib3")  # fmt: skip
# C extensions copied as built for the build's Python: only when the image's python3 has
# the same ABI (bookworm's 3.11; the extension tag is checked) and the module links only
# against libc. bsdiff4 is imported by the payload code and Debian does not package it.
VENDORED_BINARY: tuple[str, ...] = ("bsdiff4",)
# No package manager on an immutable OS: /usr is read-only and updates come as whole
# images. apt (with its apt-daily timers) and its library are purged once the packages
# are in; dpkg and its status database stay, they are the package manifest's (the SBOM's)
# source. The library's name carries its ABI (libapt-pkg6.0 in bookworm), so by prefix.
PURGED_PACKAGES: tuple[str, ...] = ("apt",)
PURGED_PREFIXES: tuple[str, ...] = ("libapt-pkg",)
PYTHON_DIR = "usr/lib/wellcar/python"
LAUNCHER = """#!/usr/bin/python3
# Wellcar's command line, installed by the image build (see docs/image.md).
import sys

sys.path.insert(0, "/usr/lib/wellcar/python")
from wellcar.agent.cli import wellcar_main

sys.exit(wellcar_main())
"""
# Flatcar's node commands (wellcar.agent.compat), as /usr/bin launchers: name -> module;
# and the installer, on the image as flatcar-install is on Flatcar's (docs/install.md).
COMPAT_LAUNCHERS = {
    "update_engine_client": "wellcar.agent.compat.update_engine_client",
    "locksmithctl": "wellcar.agent.compat.locksmithctl",
    "wellcar-install": "wellcar.install.cli",
}
COMPAT_LAUNCHER = """#!/usr/bin/python3
# {name}, a node command as Flatcar has it, installed by the image build (docs/agent.md).
import sys

sys.path.insert(0, "/usr/lib/wellcar/python")
from {module} import main

sys.exit(main())
"""


def run_mmdebstrap(settings: BuildSettings, rootfs: Path, log: Path) -> None:
    """Install the suite's minbase plus the package list into ``rootfs`` (preflight has
    checked that the apt lists know every package)."""
    packages = settings.all_packages
    cache = settings.package_cache.expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    archives = "/var/cache/apt/archives"
    ours: list[str] = []  # Wellcar's repository, pinned above Debian's (docs/packages.md)
    our_source: list[str] = []
    if settings.package_repository is not None:
        try:
            ours = mmdebstrap_arguments(settings.package_repository)
        except PackageError as exc:
            raise ImageContentError("rootfs", str(exc)) from exc
        our_source = [repository_source(settings.package_repository)]
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=directory",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        "--skip=download/empty",
        # Keep the Essential packages' .debs too (mmdebstrap deletes them after unpacking),
        # so that they reach the cache with the others.
        "--skip=essential/unlink",
        f'--setup-hook=mkdir -p "$1"{archives}',
        f"--setup-hook=sync-in {cache} {archives}",
        f"--customize-hook=sync-out {archives} {cache}",
        *ours,
        settings.suite,
        str(rootfs),
        *settings.mirrors,
        *our_source,
    ]
    run_tool("rootfs", argv, log=log, env={"SOURCE_DATE_EPOCH": str(settings.epoch)})
    if settings.package_repository is not None:
        try:
            check_image_origin(installed_packages(rootfs), settings.package_repository)
        except PackageError as exc:
            raise ImageContentError("rootfs", str(exc)) from exc
    # sync-out also copies apt's lock file and partial/ directory; keep only the .debs.
    (cache / "lock").unlink(missing_ok=True)


def purged_packages(installed: dict[str, str]) -> list[str]:
    return [name for name in installed
            if name in PURGED_PACKAGES or name.startswith(PURGED_PREFIXES)]  # fmt: skip


def purge_package_manager(rootfs: Path, log: Path | None) -> list[str]:
    """``dpkg --purge`` the package manager in the root, as Debian removes a package: its
    maintainer scripts run (apt's postrm disables its timers and removes its state).
    ``--force-depends``: nothing on the node may need apt, and what declares it (if
    anything) is left as installed. Returns the packages purged."""
    names = purged_packages(installed_packages(rootfs))
    if names:
        run_tool("rootfs", ["chroot", str(rootfs), "dpkg", "--purge", "--force-depends",
                            *names], log=log)  # fmt: skip
    return names


def installed_packages(rootfs: Path) -> dict[str, str]:
    """Read the rootfs's dpkg database from the host: no chroot needed."""
    output = run_tool(
        "manifest",
        [
            "dpkg-query",
            f"--admindir={rootfs / 'var/lib/dpkg'}",
            "--show",
            "--showformat=${Package}\t${Version}\t${db:Status-Abbrev}\n",
        ],
    )
    packages: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].startswith("ii"):
            packages[parts[0]] = parts[1]
    return dict(sorted(packages.items()))


def render_manifest(packages: dict[str, str]) -> str:
    return "".join(f"{name}={version}\n" for name, version in sorted(packages.items()))


def _ignore_caches(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__" or name.endswith(".pyc")}


def install_wellcar(rootfs: Path) -> Path:
    """Copy the ``wellcar`` package (this running tree) and the vendored dependencies into
    the image, plus the ``/usr/bin/wellcar`` launcher using the image's python3."""
    target = rootfs / PYTHON_DIR
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    source = Path(wellcar.__file__).parent
    shutil.copytree(source, target / "wellcar", ignore=_ignore_caches)
    abi = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    image_has_abi = (rootfs / "usr/lib" / version).is_dir()
    for name in (*VENDORED, *VENDORED_BINARY):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ImageContentError(
                "install-wellcar", f"{name} is not installed in the build environment"
            )
        origin = Path(next(iter(spec.submodule_search_locations)))
        extensions = list(origin.rglob("*.so"))
        if name in VENDORED and extensions:
            raise ImageContentError(
                "install-wellcar", f"{origin} has compiled extensions; it cannot be vendored"
            )
        if not image_has_abi or any(not ext.name.endswith(abi) for ext in extensions):
            raise ImageContentError(
                "install-wellcar",
                f"{name}'s extensions are built for {abi}, which the image's python3 "
                f"(no /usr/lib/{version}) cannot load",
            )
        shutil.copytree(origin, target / name, ignore=_ignore_caches)
    launcher = rootfs / "usr/bin/wellcar"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    for name, module in COMPAT_LAUNCHERS.items():
        compat = rootfs / "usr/bin" / name
        compat.write_text(COMPAT_LAUNCHER.format(name=name, module=module), encoding="utf-8")
        compat.chmod(0o755)
    return target


def find_boot_files(rootfs: Path) -> tuple[Path, Path | None]:
    """The kernel and (if initramfs-tools made one) the initrd under ``/boot``."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageContentError("kernel", f"no /boot/vmlinuz-* in {rootfs}; is a kernel listed?")
    kernel = kernels[-1]
    initrd = rootfs / "boot" / kernel.name.replace("vmlinuz-", "initrd.img-", 1)
    return kernel, initrd if initrd.is_file() else None
