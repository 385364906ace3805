"""Build a pair of real `/usr` erofs images that differ by exactly one upgraded package.

The update-payload benchmark needs realistic inputs: a container-host `/usr` built from Debian
bookworm packages, once with the old and once with the new version of a single package
(libssl3, see UPGRADE below). Everything else is pinned by the recipe and the mirror, and the
build is reproducible (SOURCE_DATE_EPOCH for mmdebstrap, fixed timestamp, owners and UUID for
mkfs.erofs), so the two images differ only where the package upgrade changed files.

Builds take about a minute (two mmdebstrap runs plus mkfs.erofs) and are cached outside the
repository, keyed by a hash of the recipe; a cache hit only reads a small JSON manifest.

    .venv/bin/python bench/payload_images.py              # build or reuse, print the pair
    .venv/bin/python bench/payload_images.py --rebuild    # ignore the cache

Needs root (mmdebstrap --mode=root), mmdebstrap, mkfs.erofs and apt lists for the mirror.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Bump when the build procedure changes in a way the key below does not capture.
RECIPE_VERSION = 1

SUITE = "bookworm"
# The same mirrors the host's apt sources use (a fixed Debian snapshot); bookworm-security
# carries the newer libssl3. Passed explicitly because mmdebstrap's default security mirror
# (security.debian.org) is not reachable here.
MIRRORS: tuple[str, ...] = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
VARIANT = "minbase"

# A container host: init, device manager, D-Bus, networking, remote access, TLS roots, a
# container runtime and filesystem/module tools. No kernel: it would add ~400 MB of modules
# and roughly double the image, and with it bsdiff's time and memory (2.5 GB for this pair).
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "systemd-timesyncd",
    "udev",
    "dbus",
    "iproute2",
    "iptables",
    "conntrack",
    "iputils-ping",
    "netbase",
    "procps",
    "openssh-server",
    "ca-certificates",
    "curl",
    "e2fsprogs",
    "kmod",
    "tzdata",
)
# Included when the mirror has them (checked with the host's apt-cache at build time).
OPTIONAL_PACKAGES: tuple[str, ...] = ("containerd",)


@dataclass(frozen=True, slots=True)
class PackageUpgrade:
    """The one package whose version differs between the old and the new image."""

    name: str
    old_version: str
    new_version: str


# libssl3: the archetypal security update of a container host, a binary package on its own
# (unlike libc6 or libsystemd0, whose siblings from the same source would have to move too),
# and a moderate payload (~6 MB installed, mostly libcrypto.so.3). A rebuilt shared library
# shifts code and relocations throughout the file, which is the hard case for a delta format;
# tzdata (many small data files) would be the easy one. bookworm has 3.0.20, bookworm-security
# 3.0.22.
UPGRADE = PackageUpgrade(
    name="libssl3", old_version="3.0.20-1~deb12u2", new_version="3.0.22-1~deb12u2"
)
# openssl (the CLI, pulled in by ca-certificates) comes from the same source; it is pinned to
# the old version in both images so that exactly one package differs and the old image is a
# consistent pre-update system (openssl only needs libssl3 >= 3.0.9).
HELD: Mapping[str, str] = {"openssl": "3.0.20-1~deb12u2"}

# Like Flatcar, ship no manual pages, translations or documentation (copyright files stay,
# as Debian's license obligations require).
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)

# Any constant works; this is the date of the Debian snapshot in the host's apt sources.
SOURCE_DATE_EPOCH = 1747699200  # 2025-05-20T00:00:00Z

# Uncompressed erofs: the image a delta works on best (compressed extents change wholesale
# when one byte of their input changes), and the update payload compresses anyway. -T with
# --ignore-mtime gives every inode the same timestamp (compact inodes, and the build-time
# mtimes of directories and generated files such as hwdb.bin cannot leak in); --all-root drops
# the owners of the build tree. The UUID is derived from the cache key and the image role
# (_image_uuid) so it is fixed per image, and old and new differ like two real releases do.
MKFS_OPTIONS: tuple[str, ...] = ("--all-root", "--ignore-mtime", f"-T{SOURCE_DATE_EPOCH}")
# Built only to report its size: lz4hc is the best compressor this erofs-utils (1.5) offers.
MKFS_COMPRESSED_OPTIONS: tuple[str, ...] = ("-zlz4hc",)

BLOCK_SIZE = 4096
_CHUNK = 1 << 20
_UUID_NAMESPACE = uuid.UUID("5d0f3c52-8a86-4b8e-9f4e-6a1c2b7e9d41")


@dataclass(frozen=True, slots=True)
class UsrImagePair:
    """Two erofs images of `/usr`, before (`old`) and after (`new`) the package upgrade.

    `changed_files` lists the paths under /usr that differ between the two trees (content,
    mode or link target; added or removed); `changed_bytes` is their size in the new tree,
    the amount of data an ideal delta would have to carry before compression.
    `timings` holds the seconds each phase of the original build took.
    """

    old: Path
    new: Path
    upgrade: PackageUpgrade
    old_packages: Mapping[str, str]
    new_packages: Mapping[str, str]
    old_size: int
    new_size: int
    old_sha256: str
    new_sha256: str
    old_lz4hc_size: int
    new_lz4hc_size: int
    changed_files: tuple[str, ...]
    changed_bytes: int
    cache_key: str
    timings: Mapping[str, float]
    cached: bool


def default_cache_dir() -> Path:
    """$WELLCAR_BENCH_CACHE, else ~/.cache/wellcar/bench (never inside the repository)."""
    env = os.environ.get("WELLCAR_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wellcar" / "bench"


def recipe() -> dict[str, Any]:
    """Everything that determines the images' content; its hash is the cache key."""
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "mirrors": list(MIRRORS),
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "optional_packages": sorted(OPTIONAL_PACKAGES),
        "upgrade": asdict(UPGRADE),
        "held": dict(sorted(HELD.items())),
        "dpkg_options": list(DPKG_OPTIONS),
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "mkfs_options": list(MKFS_OPTIONS),
        "mkfs_compressed_options": list(MKFS_COMPRESSED_OPTIONS),
        "block_size": BLOCK_SIZE,
    }


def cache_key() -> str:
    blob = json.dumps(recipe(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _log(message: str) -> None:
    print(f"[payload_images] {message}", file=sys.stderr, flush=True)


def build_usr_image_pair(cache_dir: Path | None = None, *, rebuild: bool = False) -> UsrImagePair:
    """Return the cached image pair for the current recipe, building it first if needed.

    `rebuild=True` discards a cached pair (the mirror is not part of the key, so use it if
    the mirror content changed). Concurrent callers serialise on a lock file; the loser of
    the race reuses the winner's result.
    """
    started = time.perf_counter()
    root = (cache_dir or default_cache_dir()).expanduser().resolve()
    key = cache_key()
    final = root / f"usr-pair-{key[:16]}"
    if not rebuild:
        pair = _load_cached(final, key)
        if pair is not None:
            _log(f"reusing {final} ({(time.perf_counter() - started) * 1e3:.0f} ms)")
            return pair
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".usr-pair-{key[:16]}.lock"):
        if not rebuild:
            pair = _load_cached(final, key)
            if pair is not None:
                _log(f"reusing {final}, built by a concurrent run")
                return pair
        # Rebuilding, or a leftover that does not load (deleted image, truncated manifest).
        _remove_tree(final)
        work = root / f".tmp-usr-pair-{key[:16]}-{os.getpid()}"
        _remove_tree(work)
        work.mkdir()
        try:
            _build(work, key)
            os.rename(work, final)
        finally:
            _remove_tree(work)
    pair = _load_cached(final, key)
    if pair is None:  # pragma: no cover - _build wrote everything _load_cached checks
        raise RuntimeError(f"freshly built pair in {final} does not load")
    return dataclasses.replace(pair, cached=False)


def _load_cached(directory: Path, key: str) -> UsrImagePair | None:
    """The pair described by directory/manifest.json, or None if absent or inconsistent."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("cache_key") != key:
        return None
    old, new = directory / "old.erofs", directory / "new.erofs"
    # Sizes only: hashing 2 × 300 MB would take longer than the second a cache hit may cost.
    # The sha256 sums are in the manifest for anyone who wants to check.
    for path, size in ((old, manifest["old"]["size"]), (new, manifest["new"]["size"])):
        if not path.is_file() or path.stat().st_size != size:
            return None
    return UsrImagePair(
        old=old,
        new=new,
        upgrade=PackageUpgrade(**manifest["upgrade"]),
        old_packages=manifest["old"]["packages"],
        new_packages=manifest["new"]["packages"],
        old_size=manifest["old"]["size"],
        new_size=manifest["new"]["size"],
        old_sha256=manifest["old"]["sha256"],
        new_sha256=manifest["new"]["sha256"],
        old_lz4hc_size=manifest["old"]["lz4hc_size"],
        new_lz4hc_size=manifest["new"]["lz4hc_size"],
        changed_files=tuple(manifest["changed_files"]),
        changed_bytes=manifest["changed_bytes"],
        cache_key=key,
        timings=manifest["timings"],
        cached=True,
    )


def _build(work: Path, key: str) -> None:
    """Build both rootfs trees and images in `work` and write manifest.json last."""
    total_started = time.perf_counter()
    timings: dict[str, float] = {}
    optional = [p for p in OPTIONAL_PACKAGES if _available(p)]
    skipped = sorted(set(OPTIONAL_PACKAGES) - set(optional))
    if skipped:
        _log(f"not on the mirror, skipped: {', '.join(skipped)}")
    images: dict[str, dict[str, Any]] = {}
    trees: dict[str, dict[str, tuple[Any, ...]]] = {}
    for role, version in (("old", UPGRADE.old_version), ("new", UPGRADE.new_version)):
        rootfs = work / f"{role}-rootfs"
        _log(f"{role}: mmdebstrap {SUITE} {VARIANT} with {UPGRADE.name}={version} ...")
        started = time.perf_counter()
        _mmdebstrap(rootfs, [*PACKAGES, *optional], version, work / f"{role}-mmdebstrap.log")
        timings[f"{role}_rootfs"] = time.perf_counter() - started
        _log(f"{role}: rootfs done in {timings[f'{role}_rootfs']:.1f} s")

        packages = _installed_packages(rootfs)
        if packages.get(UPGRADE.name) != version:
            raise RuntimeError(f"{role}: {UPGRADE.name} is {packages.get(UPGRADE.name)}")
        started = time.perf_counter()
        image = work / f"{role}.erofs"
        uuid_ = _image_uuid(key, role)
        _mkfs(rootfs / "usr", image, [*MKFS_OPTIONS, f"-U{uuid_}"])
        _pad_to_block(image)
        timings[f"{role}_mkfs"] = time.perf_counter() - started
        started = time.perf_counter()
        compressed = work / f"{role}.lz4hc.erofs"
        _mkfs(rootfs / "usr", compressed, [*MKFS_OPTIONS, *MKFS_COMPRESSED_OPTIONS, f"-U{uuid_}"])
        lz4hc_size = compressed.stat().st_size
        compressed.unlink()
        timings[f"{role}_mkfs_lz4hc"] = time.perf_counter() - started
        size = image.stat().st_size
        _log(
            f"{role}: {image.name} {size / 2**20:.1f} MiB (lz4hc would be "
            f"{lz4hc_size / 2**20:.1f} MiB), mkfs {timings[f'{role}_mkfs']:.1f} s"
        )
        trees[role] = _tree_index(rootfs / "usr")
        images[role] = {
            "size": size,
            "sha256": _sha256(image),
            "lz4hc_size": lz4hc_size,
            "uuid": str(uuid_),
            "packages": packages,
        }
        # The tree index is all that is still needed; the rootfs is ~500 MB per role.
        _remove_tree(rootfs)

    _check_one_package_differs(images["old"]["packages"], images["new"]["packages"])
    changed = sorted(
        path
        for path in trees["old"].keys() | trees["new"].keys()
        if trees["old"].get(path) != trees["new"].get(path)
    )
    changed_bytes = sum(
        entry[2] for path in changed if (entry := trees["new"].get(path)) and entry[0] == "f"
    )
    _log(f"{len(changed)} paths differ under /usr, {changed_bytes / 2**20:.2f} MiB in new")
    timings["total"] = time.perf_counter() - total_started
    manifest = {
        "cache_key": key,
        "recipe": recipe(),
        "included_optional_packages": optional,
        "upgrade": asdict(UPGRADE),
        "old": images["old"],
        "new": images["new"],
        "changed_files": changed,
        "changed_bytes": changed_bytes,
        "timings": timings,
        "tools": _tool_versions(),
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _log(f"pair built in {timings['total']:.1f} s")


def _available(package: str) -> bool:
    # The host's apt lists come from the same mirrors as MIRRORS, so they answer for them.
    result = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0 and b"Package:" in result.stdout


def _mmdebstrap(rootfs: Path, packages: Sequence[str], version: str, log: Path) -> None:
    pins = [f"{UPGRADE.name}={version}", *(f"{name}={ver}" for name, ver in sorted(HELD.items()))]
    argv = [
        "mmdebstrap",
        "--mode=root",
        f"--variant={VARIANT}",
        "--format=directory",
        f"--include={','.join([*packages, *pins])}",
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        SUITE,
        str(rootfs),
        *MIRRORS,
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)}
    with log.open("wb") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"mmdebstrap failed ({result.returncode}), log {log}:\n" + "\n".join(tail)
        )


def _mkfs(source: Path, image: Path, options: Sequence[str]) -> None:
    subprocess.run(
        ["mkfs.erofs", "--quiet", *options, str(image), str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _image_uuid(key: str, role: str) -> uuid.UUID:
    return uuid.uuid5(_UUID_NAMESPACE, f"{key}:{role}")


def _installed_packages(rootfs: Path) -> dict[str, str]:
    # Query the rootfs's dpkg database from the host: no chroot, no mounts needed.
    out = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={rootfs / 'var/lib/dpkg'}",
            "--show",
            "--showformat=${Package}\t${Version}\t${db:Status-Abbrev}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages: dict[str, str] = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.startswith("ii"):
            packages[name] = version
    return dict(sorted(packages.items()))


def _check_one_package_differs(old: Mapping[str, str], new: Mapping[str, str]) -> None:
    differing = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
    if differing != [UPGRADE.name]:
        detail = ", ".join(f"{n}: {old.get(n)} -> {new.get(n)}" for n in differing)
        raise RuntimeError(f"the package sets differ in more than {UPGRADE.name}: {detail}")


def _tree_index(top: Path) -> dict[str, tuple[Any, ...]]:
    """Path -> (kind, mode, size or target, sha256) for everything under `top`."""
    index: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(top))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                index[rel] = ("f", mode, st.st_size, _sha256(path))
            elif stat.S_ISLNK(st.st_mode):
                index[rel] = ("l", mode, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                index[rel] = ("d", mode)
            else:
                index[rel] = ("o", st.st_mode, st.st_rdev)
    return index


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tool_versions() -> dict[str, str]:
    # Recorded, not hashed: a newer erofs-utils may lay out the same tree differently, which
    # matters for reproducibility but not for the images' value as benchmark inputs.
    out = subprocess.run(
        ["dpkg-query", "--show", "mmdebstrap", "erofs-utils"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _pad_to_block(image: Path) -> None:
    # erofs images end on a block boundary already; this keeps the promise if that changes.
    remainder = image.stat().st_size % BLOCK_SIZE
    if remainder:
        with image.open("ab") as f:
            f.write(bytes(BLOCK_SIZE - remainder))


def pad_to_slot(image: Path, slot_size: int, out: Path) -> Path:
    """Copy `image` to `out` followed by zeros up to `slot_size` bytes, and return `out`.

    The zeros are written, not left as a hole (no truncate/seek), so the copy is not sparse:
    reading it costs what reading a real partition costs. Written to a temporary name and
    renamed, so `out` is never a partial slot.
    """
    size = image.stat().st_size
    if size > slot_size:
        raise ValueError(f"{image} ({size} bytes) does not fit a {slot_size}-byte slot")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with image.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            zeros = bytes(_CHUNK)
            remaining = slot_size - size
            while remaining:
                remaining -= dst.write(zeros[: min(remaining, _CHUNK)])
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        # Field 5 is the mount point, with spaces etc. octal-escaped (none in our paths).
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    """rmtree, but never into a mount: an interrupted mmdebstrap --mode=root can leave /dev,
    /proc or /sys mounted in the rootfs, and rmtree would then delete the host's files."""
    if not path.exists():
        return
    mounts = _mounts_below(path)
    if mounts:
        raise RuntimeError(f"refusing to remove {path}: mounted below it: {', '.join(mounts)}")
    shutil.rmtree(path)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# The manifest stores timings with sorted keys; print them in build order.
_TIMING_ORDER = (
    "old_rootfs",
    "old_mkfs",
    "old_mkfs_lz4hc",
    "new_rootfs",
    "new_mkfs",
    "new_mkfs_lz4hc",
    "total",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: %(default)s")
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached pair")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    pair = build_usr_image_pair(args.cache_dir, rebuild=args.rebuild)
    elapsed = time.perf_counter() - started
    u = pair.upgrade
    rows = [
        ("upgraded package", f"{u.name} {u.old_version} -> {u.new_version}"),
        ("packages per image", str(len(pair.new_packages))),
        ("old image", f"{pair.old}  {pair.old_size} B ({_mib(pair.old_size)})"),
        ("new image", f"{pair.new}  {pair.new_size} B ({_mib(pair.new_size)})"),
        ("lz4hc sizes", f"old {_mib(pair.old_lz4hc_size)}, new {_mib(pair.new_lz4hc_size)}"),
        ("changed under /usr", f"{len(pair.changed_files)} paths, {_mib(pair.changed_bytes)}"),
        ("original build", ", ".join(f"{k} {pair.timings[k]:.1f} s" for k in _TIMING_ORDER)),
        ("this call", f"{elapsed:.3f} s ({'cached' if pair.cached else 'built'})"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for path in pair.changed_files:
        print(f"  changed: /usr/{path}")
    if args.json:
        data = asdict(pair)
        data.update(old=str(pair.old), new=str(pair.new), call_seconds=elapsed)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
