"""``wellcar packages verify``: is Debian's binary what its source builds here?

Debian's source is rebuilt unpatched (no suffix, no changelog entry) by the same builder
as the set, and each binary package is compared with Debian's .deb of the same version
(fetched by ``apt-get download``, so checked against the signed Packages index).
Identical files are the proof; otherwise each .deb's control and data archives are read
member by member and every difference is classed as ``content`` (bytes or link target),
``timestamp`` (mtime only), ``metadata`` (mode, owner), ``only-ours`` / ``only-debian``,
``ordering`` (the same members in another order) or ``container`` (every member equal:
the ar wrapper or the compression differs).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .builder import build_package
from .errors import BuildError
from .layout import BuildCache
from .package_set import PackageSpec
from .sources import AptState, sha256_file

DEBUG_SUFFIX = "-dbgsym"  # Debian keeps these in debian-debug, not in the main archive


@dataclass(frozen=True)
class Difference:
    archive: str  # control or data
    path: str
    kind: str


@dataclass(frozen=True)
class DebComparison:
    package: str
    identical: bool
    differences: list[Difference] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyResult:
    source: str
    version: str
    identical: bool
    build_seconds: float
    debs: list[DebComparison]

    def summary(self) -> str:
        if self.identical:
            return "bit-identical"
        kinds: dict[str, int] = {}
        for deb in self.debs:
            for diff in deb.differences:
                kinds[diff.kind] = kinds.get(diff.kind, 0) + 1
        return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))


@dataclass(frozen=True)
class _Member:
    mode: int
    owner: tuple[int, int]
    mtime: int
    digest: str


def _members(deb: Path, part: str) -> tuple[list[str], dict[str, _Member]]:
    flag = "--ctrl-tarfile" if part == "control" else "--fsys-tarfile"
    with subprocess.Popen(["dpkg-deb", flag, str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        order: list[str] = []
        members: dict[str, _Member] = {}
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for info in archive:
                digest = info.linkname
                if info.isfile():
                    stream = archive.extractfile(info)
                    digest = hashlib.sha256(stream.read() if stream else b"").hexdigest()
                name = info.name.removeprefix("./")
                order.append(name)
                members[name] = _Member(info.mode, (info.uid, info.gid), int(info.mtime), digest)
    return order, members


def compare_debs(ours: Path, theirs: Path) -> list[Difference]:
    """Empty when the two files are identical."""
    if sha256_file(ours) == sha256_file(theirs):
        return []
    differences = []
    for part in ("control", "data"):
        our_order, our_members = _members(ours, part)
        their_order, their_members = _members(theirs, part)
        for name in sorted(set(our_members) | set(their_members)):
            mine, other = our_members.get(name), their_members.get(name)
            if other is None:
                differences.append(Difference(part, name, "only-ours"))
            elif mine is None:
                differences.append(Difference(part, name, "only-debian"))
            elif mine.digest != other.digest:
                differences.append(Difference(part, name, "content"))
            elif mine.mtime != other.mtime:
                differences.append(Difference(part, name, "timestamp"))
            elif (mine.mode, mine.owner) != (other.mode, other.owner):
                differences.append(Difference(part, name, "metadata"))
        common = set(our_members) & set(their_members)
        if [n for n in our_order if n in common] != [n for n in their_order if n in common]:
            differences.append(Difference(part, "", "ordering"))
    return differences or [Difference("", "", "container")]


def debian_deb(apt: AptState, cache: BuildCache, package: str, version: str) -> Path:
    """Debian's .deb, downloaded once (apt-get download checks it against the signed
    Packages index)."""
    # apt-get download's file name: the epoch's colon escaped as %3a.
    names = [f"{package}_{version.replace(':', '%3a')}_{arch}.deb" for arch in ("amd64", "all")]
    found = [cache.debian_debs / n for n in names if (cache.debian_debs / n).is_file()]
    if not found:
        apt.run(["apt-get", "download", f"{package}={version}"], cwd=cache.debian_debs)
        found = [cache.debian_debs / n for n in names if (cache.debian_debs / n).is_file()]
    if not found:
        raise BuildError(f"apt-get download {package}={version} gave no .deb")
    return found[0]


def verify_source(
    source: str,
    suite: str,
    version: str | None,
    apt: AptState,
    cache: BuildCache,
    mirrors: tuple[str, ...],
    progress: Callable[[str], None],
    jobs: int = 2,
) -> VerifyResult:
    spec = PackageSpec(source, cache.verify, source, suite, version, "", "verify", ())
    started = time.monotonic()
    build = build_package(spec, apt, cache, mirrors, progress, jobs)
    seconds = 0.0 if build.cached else time.monotonic() - started
    debs = []
    for name in sorted(build.files):
        if not name.endswith(".deb"):
            continue
        package = name.split("_", 1)[0]
        if package.endswith(DEBUG_SUFFIX):
            continue
        progress(f"{source}: comparing {package} with Debian's")
        theirs = debian_deb(apt, cache, package, build.binaries[package])
        differences = compare_debs(build.path / name, theirs)
        debs.append(DebComparison(package, not differences, differences))
    result = VerifyResult(source, build.version, all(d.identical for d in debs), seconds, debs)
    record = cache.verify / f"{source}_{build.version.split(':')[-1]}.json"
    record.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return result


def load_verify_results(cache: BuildCache) -> dict[tuple[str, str], VerifyResult]:
    """(source, version) -> what verify found, for every source verified so far."""
    results = {}
    for path in sorted(cache.verify.glob("*.json")) if cache.verify.is_dir() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        debs = [
            DebComparison(d["package"], d["identical"], [Difference(**x) for x in d["differences"]])
            for d in data["debs"]
        ]
        result = VerifyResult(
            data["source"], data["version"], data["identical"], data["build_seconds"], debs
        )
        results[(result.source, result.version)] = result
    return results
