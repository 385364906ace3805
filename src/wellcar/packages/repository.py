"""Wellcar's apt repository: static files, signed, published all at once.

Layout (apt's "dists" form, one suite and one component)::

    pool/main/<source>/...            .deb and source files of the builds
    dists/wellcar/main/binary-amd64/Packages(.gz)
    dists/wellcar/main/source/Sources(.gz)
    dists/wellcar/Release             SHA256 of the indexes
    dists/wellcar/InRelease           Release, clearsigned
    dists/wellcar/Release.gpg         Release, detached signature
    wellcar-archive-keyring.gpg       the public key (apt's signed-by)
    wellcar-preferences               the apt pin an image build uses
    wellcar-builds.json               per source: version, patches, .buildinfo, build key

The new tree is made beside the published one, its InRelease checked with gpgv against the
exported key, and only then swapped in by renames; a failure anywhere leaves the previous
repository as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from .builder import BuildResult
from .control_file import parse_paragraphs, render_paragraph
from .errors import RepositoryError
from .repo_key import SigningKey

SUITE = "wellcar"
COMPONENT = "main"
ARCHITECTURE = "amd64"
ORIGIN = "Wellcar"
KEYRING_FILE = "wellcar-archive-keyring.gpg"
PREFERENCES_FILE = "wellcar-preferences"  # the pin, for an image build (image_origin)
BUILDS_FILE = "wellcar-builds.json"  # per source: version, patches, .buildinfo (the SBOM's)


@dataclass(frozen=True)
class Repository:
    """A published repository directory (the one place that names its files)."""

    root: Path

    @property
    def dists(self) -> Path:
        return self.root / "dists" / SUITE

    @property
    def packages_index(self) -> Path:
        return self.dists / COMPONENT / f"binary-{ARCHITECTURE}" / "Packages"

    @property
    def sources_index(self) -> Path:
        return self.dists / COMPONENT / "source" / "Sources"

    @property
    def release(self) -> Path:
        return self.dists / "Release"

    @property
    def inrelease(self) -> Path:
        return self.dists / "InRelease"

    @property
    def keyring(self) -> Path:
        return self.root / KEYRING_FILE

    @property
    def builds_file(self) -> Path:
        return self.root / BUILDS_FILE

    def builds(self) -> dict[str, dict[str, object]]:
        """source -> {version, debian_version, patches, buildinfo, key}."""
        if not self.builds_file.is_file():
            return {}
        data: dict[str, dict[str, object]] = json.loads(self.builds_file.read_text("utf-8"))
        return data

    @property
    def preferences(self) -> Path:
        return self.root / PREFERENCES_FILE

    def apt_line(self, scheme: str = "file") -> str:
        """The sources line an apt uses for this repository. mmdebstrap needs ``copy``:
        the .debs must be readable from inside the chroot, and apt's copy method puts them
        in its archive directory."""
        return f"deb [signed-by={self.keyring}] {scheme}://{self.root} {SUITE} {COMPONENT}"

    def binaries(self) -> dict[str, str]:
        """binary package -> version, from the Packages index."""
        if not self.packages_index.is_file():
            raise RepositoryError(f"{self.root} is not a Wellcar repository (no Packages)")
        text = self.packages_index.read_text(encoding="utf-8")
        return {p["Package"]: p["Version"] for p in parse_paragraphs(text)}

    def sources(self) -> dict[str, str]:
        text = self.sources_index.read_text(encoding="utf-8")
        return {p["Package"]: p["Version"] for p in parse_paragraphs(text)}


def pin_preferences() -> str:
    """apt_preferences(5): every package of our repository above Debian's, even over a
    higher Debian version (1001 also allows that downgrade)."""
    return f"Package: *\nPin: release o={ORIGIN}\nPin-Priority: 1001\n"


def _scan(root: Path, argv: list[str]) -> str:
    result = subprocess.run([*argv, "pool"], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RepositoryError(f"{argv[0]}: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def _write_index(path: Path, text: str) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    compressed = path.with_name(path.name + ".gz")
    # mtime=0: the same index gives the same bytes.
    with compressed.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text.encode())
    return [path, compressed]


def render_release(dists: Path, indexes: list[Path], now: datetime) -> str:
    lines = []
    for path in sorted(indexes):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f"{digest} {len(data)} {path.relative_to(dists)}")
    fields = {
        "Origin": ORIGIN,
        "Label": ORIGIN,
        "Suite": SUITE,
        "Codename": SUITE,
        "Date": format_datetime(now.astimezone(UTC), usegmt=True),
        "Architectures": ARCHITECTURE,
        "Components": COMPONENT,
        "Description": "Wellcar's packages, rebuilt from Debian sources with Wellcar's patches",
        "SHA256": "\n".join(["", *lines]),
    }
    return render_paragraph(fields)


def verify_repository(repo: Repository, keyring: Path | None = None) -> None:
    """gpgv checks InRelease with ``keyring`` (default: the repository's own exported
    key), and every index's SHA256 against what InRelease lists."""
    key = keyring or repo.keyring
    result = subprocess.run(
        ["gpgv", "--keyring", str(key), "--output", "-", str(repo.inrelease)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise RepositoryError(f"{repo.inrelease}: bad signature ({(message or ['gpgv'])[-1]})")
    signed = parse_paragraphs(result.stdout.decode())[0]
    for line in signed.get("SHA256", "").splitlines():
        if not line.strip():
            continue
        digest, size, name = line.split()
        path = repo.dists / name
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != digest or len(data) != int(size):
            raise RepositoryError(f"{path}: does not match the signed Release")


def stage_repository(staging: Path, builds: list[BuildResult], key: SigningKey) -> Repository:
    repo = Repository(staging)
    for build in builds:
        pool = staging / "pool" / COMPONENT / build.source
        pool.mkdir(parents=True, exist_ok=True)
        for name in build.files:
            if not name.endswith(".changes"):
                shutil.copyfile(build.path / name, pool / name)
    indexes = _write_index(
        repo.packages_index, _scan(staging, ["dpkg-scanpackages", "--multiversion"])
    )
    indexes += _write_index(repo.sources_index, _scan(staging, ["dpkg-scansources"]))
    release = render_release(repo.dists, indexes, datetime.now(UTC))
    repo.release.write_text(release, encoding="utf-8")
    repo.inrelease.write_bytes(key.gpg("--clearsign", stdin=release.encode()))
    (repo.dists / "Release.gpg").write_bytes(
        key.gpg("--armor", "--detach-sign", stdin=release.encode())
    )
    repo.keyring.write_bytes(key.gpg("--export", key.fingerprint))
    repo.preferences.write_text(pin_preferences(), encoding="utf-8")
    record = {
        b.source: {
            "version": b.version,
            "debian_version": b.debian_version,
            "patches": b.patches,
            "key": b.key,
            "buildinfo": [
                f"pool/{COMPONENT}/{b.source}/{n}" for n in b.files if n.endswith(".buildinfo")
            ],
        }
        for b in builds
    }
    repo.builds_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    verify_repository(repo)
    return repo


def publish_repository(target: Path, builds: list[BuildResult], key: SigningKey) -> Repository:
    """Make the repository of ``builds`` at ``target``, replacing what was there only once
    the new one is complete and verified."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        stage_repository(staging, builds, key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o755)
    previous = None
    if target.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, previous / "tree")
    try:
        os.replace(staging, target)
    except OSError:
        if previous is not None:
            os.replace(previous / "tree", target)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return Repository(target)
