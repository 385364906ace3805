"""``wellcar packages build``: fetch, patch, version, build in a clean chroot, cache.

A build's key hashes everything that can change its output: the Debian source (its .dsc
hash, which names every file's hash), the set's package.toml fields and patches, and the
build environment (the chroot's package manifest). A key already in the cache is not built
again. Outputs (.deb, .dsc and source files, .buildinfo, .changes, build.log) are written
to a scratch directory and renamed into place with ``result.json`` last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .changelog import prepend_entry
from .chroot import BuildChroot, ensure_chroot
from .errors import BuildError
from .layout import RESULT_FILE, BuildCache
from .package_set import PackageSpec
from .patching import apply_series
from .sources import AptState, DebianSource, fetch_source, unpack

RECIPE = 1  # bump when the way a package is built changes
BUILD_DIR = "/build"
LOG_FILE = "build.log"
_LOG_TAIL = 3
_OUTPUT_SUFFIXES = (".deb", ".udeb", ".buildinfo", ".changes", ".dsc", ".diff.gz")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    name: str
    source: str
    version: str  # ours
    debian_version: str
    key: str
    directory: str
    binaries: dict[str, str]  # binary package -> version
    files: list[str]
    patches: list[str]
    cached: bool = False

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE


def build_key(
    spec: PackageSpec,
    source: DebianSource,
    chroot: BuildChroot | None,
    environment: str | None = None,
) -> str:
    """The cache key; ``environment`` (the chroot manifest's hash) may be given instead of
    the chroot."""
    inputs = {
        "recipe": RECIPE,
        "source": spec.source,
        "debian_version": source.version,
        "dsc_sha256": source.dsc_sha256,
        "suite": spec.suite,
        "suffix": spec.suffix,
        "why": spec.why,
        "patches": [
            [p.name, hashlib.sha256(p.text).hexdigest(), p.description] for p in spec.patches
        ],
        "environment": environment if chroot is None else chroot.manifest_sha256,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def load_result(directory: Path) -> BuildResult | None:
    path = directory / RESULT_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return BuildResult(**{**data, "directory": str(directory), "cached": True})


def deb_fields(deb: Path, *names: str) -> list[str]:
    result = subprocess.run(
        ["dpkg-deb", "--field", str(deb), *names], stdout=subprocess.PIPE, text=True, check=True
    )
    values = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return [values.get(name, "") for name in names] if len(names) > 1 else [result.stdout.strip()]


def _extract(tarball: Path, target: Path) -> None:
    # tar(1) as root keeps owners, modes and the device nodes mmdebstrap put in /dev.
    target.mkdir()
    subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-xf", str(tarball)], check=True)


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in lines[-_LOG_TAIL:])


def run_in_chroot(root: Path, tree_name: str, log: Path, jobs: int) -> int:
    """dpkg-buildpackage (source and binaries, unsigned) in ``root`` with no network: a new
    network namespace has only a down loopback; /proc is a fresh mount in a new PID
    namespace, gone with it."""
    script = f"cd {BUILD_DIR}/{tree_name} && dpkg-buildpackage -us -uc"
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/nonexistent",
        "LC_ALL": "C.UTF-8",
        "DEB_BUILD_OPTIONS": f"parallel={jobs}",
        "TERM": "dumb",
    }
    argv = [
        "unshare",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        f"--mount-proc={root}/proc",
        "chroot",
        str(root),
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "sh",
        "-c",
        script,
    ]
    with log.open("a", encoding="utf-8") as out:
        out.write(f"### $ {' '.join(argv)}\n")
        out.flush()
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def build_package(
    spec: PackageSpec,
    apt: AptState,
    cache: BuildCache,
    mirrors: tuple[str, ...],
    progress: Progress,
    jobs: int = 2,
) -> BuildResult:
    cache.make()
    progress(f"{spec.name}: fetching the Debian source")
    source = fetch_source(apt, cache, spec)
    fields = source.fields()
    failed_logs = cache.builds / "failed"
    failed_logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-", dir=cache.work) as scratch:
        work = Path(scratch)
        log = work / LOG_FILE
        log.touch()
        # Patches are checked before the (slow) chroot: a patch that no longer applies
        # after Debian moved the package fails in seconds.
        tree = work / "tree" / f"{spec.source}-src"
        tree.parent.mkdir()
        unpack(source, tree)
        apply_series(spec, tree, source.version)
        version = source.version
        if spec.suffix:  # no suffix: Debian's own source, rebuilt as is (verify)
            changelog = tree / "debian/changelog"
            text, version = prepend_entry(changelog.read_text(encoding="utf-8"), spec)
            changelog.write_text(text, encoding="utf-8")
        progress(f"{spec.name}: build chroot")
        try:
            chroot = ensure_chroot(cache, spec.suite, mirrors, source.dsc, fields, log)
        except BuildError as exc:  # the scratch log goes with the scratch directory
            kept = failed_logs / f"{spec.name}-chroot.log"
            shutil.copyfile(log, kept)
            raise BuildError(f"{spec.name}: {exc}; log {kept}: {_tail(log)}") from exc
        key = build_key(spec, source, chroot)
        done = load_result(cache.build_dir(key))
        if done is not None:
            return done
        progress(f"{spec.name}: building {version} (no network)")
        root = work / "root"
        _extract(chroot.tarball, root)
        build = root / BUILD_DIR.lstrip("/")
        build.mkdir(exist_ok=True)
        shutil.move(tree, build / tree.name)
        for entry in source.files:  # the upstream tarballs dpkg-source -b reuses
            if ".orig" in entry.name:
                shutil.copyfile(source.directory / entry.name, build / entry.name)
        status = run_in_chroot(root, tree.name, log, jobs)
        if status != 0:
            kept = failed_logs / f"{spec.name}-{key}.log"
            shutil.copyfile(log, kept)
            raise BuildError(
                f"{spec.name}: dpkg-buildpackage failed (exit {status}); log {kept}: {_tail(log)}"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache.builds))
        files = []
        for path in sorted(build.iterdir()):
            if path.is_file() and (path.name.endswith(_OUTPUT_SUFFIXES) or ".tar." in path.name):
                shutil.copyfile(path, staging / path.name)
                files.append(path.name)
        shutil.copyfile(log, staging / LOG_FILE)
    binaries = {}
    for name in files:
        if name.endswith((".deb", ".udeb")):
            package, deb_version = deb_fields(staging / name, "Package", "Version")
            binaries[package] = deb_version
    result = BuildResult(
        spec.name,
        spec.source,
        version,
        source.version,
        key,
        str(cache.build_dir(key)),
        binaries,
        files,
        [p.name for p in spec.patches],
    )
    record = {k: v for k, v in asdict(result).items() if k not in ("directory", "cached")}
    (staging / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    target = cache.build_dir(key)
    if target.exists():  # an incomplete earlier attempt (no result.json)
        shutil.rmtree(target)
    os.replace(staging, target)
    return result


def build_set(
    specs: list[PackageSpec],
    cache: BuildCache,
    mirrors: tuple[str, ...],
    progress: Progress,
    jobs: int = 2,
) -> list[BuildResult]:
    """Build ``specs`` one after the other (each build uses ``jobs`` cores)."""
    cache.make()
    apt = AptState(cache.apt)
    progress("updating the source indexes")
    apt.update(mirrors)
    return [build_package(spec, apt, cache, mirrors, progress, jobs) for spec in specs]
