"""Clean build chroots: mmdebstrap's ``buildd`` variant plus one source's build-dependencies,
made once and kept as a tarball keyed by what went into it.

Decision (docs/packages.md): an mmdebstrap chroot and ``dpkg-buildpackage`` run under
``unshare --net`` rather than sbuild. The chroot is made with network (apt needs the
mirror) and the build runs without: a fresh network namespace has only a down loopback.
The tarball is unpacked for every build, so no build sees another's leftovers.
The key covers the suite, the mirrors, the source's build-dependency fields and the
mmdebstrap version; the installed packages (``.manifest``) are the build environment that
the build cache key covers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError
from .layout import BuildCache

BUILD_DEP_FIELDS = ("Build-Depends", "Build-Depends-Arch", "Build-Depends-Indep")
ARCHIVES = "/var/cache/apt/archives"
RECIPE = 1  # bump when the way a chroot is made changes


@dataclass(frozen=True)
class BuildChroot:
    tarball: Path
    manifest: Path

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest.read_bytes()).hexdigest()


def mmdebstrap_version() -> str:
    result = subprocess.run(
        ["mmdebstrap", "--version"], stdout=subprocess.PIPE, text=True, check=False
    )
    return result.stdout.strip()


def chroot_key(
    suite: str, mirrors: tuple[str, ...], dsc_fields: dict[str, str], tool_version: str
) -> str:
    inputs = {
        "recipe": RECIPE,
        "suite": suite,
        "mirrors": list(mirrors),
        "build_depends": {f: dsc_fields.get(f, "") for f in BUILD_DEP_FIELDS},
        "mmdebstrap": tool_version,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def ensure_chroot(
    cache: BuildCache,
    suite: str,
    mirrors: tuple[str, ...],
    dsc: Path,
    dsc_fields: dict[str, str],
    log: Path,
) -> BuildChroot:
    key = chroot_key(suite, mirrors, dsc_fields, mmdebstrap_version())
    chroot = BuildChroot(cache.chroot_tar(key), cache.chroot_manifest(key))
    if chroot.tarball.is_file() and chroot.manifest.is_file():
        return chroot
    debs = cache.debs.resolve()
    cache.make()
    with tempfile.TemporaryDirectory(dir=cache.work) as scratch:
        tmp_tar = Path(scratch) / "chroot.tar"
        tmp_manifest = Path(scratch) / "manifest"
        fmt = "${Package}=${Version}\\n"
        argv = [
            "mmdebstrap",
            "--mode=root",
            "--variant=buildd",
            "--format=tar",
            "--skip=download/empty",
            "--skip=essential/unlink",
            f'--setup-hook=mkdir -p "$1"{ARCHIVES}',
            f"--setup-hook=sync-in {debs} {ARCHIVES}",
            f"--customize-hook=copy-in {dsc} /tmp",
            f'--customize-hook=chroot "$1" apt-get build-dep -y --no-install-recommends '
            f"/tmp/{shlex.quote(dsc.name)}",
            f'--customize-hook=rm "$1"/tmp/{shlex.quote(dsc.name)}',
            f"--customize-hook=sync-out {ARCHIVES} {debs}",
            f"--customize-hook=chroot \"$1\" dpkg-query -W -f='{fmt}' | sort > {tmp_manifest}",
            suite,
            str(tmp_tar),
            *mirrors,
        ]
        with log.open("a", encoding="utf-8") as out:
            out.write(f"### $ {shlex.join(argv)}\n")
            out.flush()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        (debs / "lock").unlink(missing_ok=True)
        if result.returncode != 0:
            raise BuildError(
                f"the build chroot could not be made (mmdebstrap exit {result.returncode})"
            )
        os.replace(tmp_manifest, chroot.manifest)
        os.replace(tmp_tar, chroot.tarball)
    return chroot
