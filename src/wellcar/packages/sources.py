"""Fetching Debian source packages, verified against the archive's signed Sources index.

A private apt state (in the build cache; the host's apt configuration is neither read nor
changed) lists ``deb`` and ``deb-src`` entries for the image's mirrors, each ``signed-by`` Debian's
archive keyring. ``apt-get update`` verifies InRelease with that keyring and each Sources
index against the hashes InRelease lists; ``apt-get source`` then checks every downloaded
file against the Sources entry. The hashes that entry names are checked here once more
(also for files already in the cache), and ``dpkg-source -x`` checks the .dsc's own list.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .control_file import parse_paragraphs
from .errors import SourceError
from .layout import BuildCache
from .package_set import PackageSpec

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# --print-uris: 'URI' NAME SIZE HASHTYPE:HASH
_URI_RE = re.compile(r"^'(?P<uri>[^']+)' (?P<name>\S+) (?P<size>\d+) (?P<hash>\S+)$")


def index_lines(mirrors: tuple[str, ...], keyring: Path = DEBIAN_KEYRING) -> list[str]:
    """``deb`` and ``deb-src`` lines for the ``deb`` lines of ``mirrors`` (the image's),
    signed-by Debian's keyring so that an unsigned or wrongly signed index is refused.
    The binary indexes serve ``verify`` (Debian's .debs) and ``status`` (their sources)."""
    lines = []
    for mirror in mirrors:
        parts = mirror.split()
        if not parts or parts[0] != "deb":
            continue
        rest = " ".join(part for part in parts[1:] if not part.startswith("["))
        lines += [f"deb [signed-by={keyring}] {rest}", f"deb-src [signed-by={keyring}] {rest}"]
    return lines


@dataclass(frozen=True)
class AptState:
    """apt-get and apt-cache with their state in the build cache."""

    directory: Path

    @property
    def sources_list(self) -> Path:
        return self.directory / "sources.list"

    def options(self) -> list[str]:
        d = self.directory
        settings = {
            "Dir::State": d,
            "Dir::State::Lists": d / "lists",
            "Dir::Cache": d / "cache",
            "Dir::Etc::SourceList": self.sources_list,
            # Empty, so that no host file is read (a missing directory is a warning).
            "Dir::Etc::SourceParts": d / "empty",
            "Dir::Etc::Preferences": d / "empty" / "preferences",
            "Dir::Etc::PreferencesParts": d / "empty",
            "Dir::State::status": "/var/lib/dpkg/status",
            "APT::Sandbox::User": "root",
        }
        return ["-q", *(arg for k, v in settings.items() for arg in ("-o", f"{k}={v}"))]

    def run(self, argv: list[str], cwd: Path | None = None) -> str:
        result = subprocess.run(
            [argv[0], *self.options(), *argv[1:]],
            cwd=cwd,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if result.returncode != 0:
            errors = [line for line in result.stdout.splitlines() if line.startswith(("E:", "W:"))]
            raise SourceError(f"{' '.join(argv[:2])}: {'; '.join(errors) or result.stdout[-300:]}")
        return result.stdout

    def update(self, mirrors: tuple[str, ...]) -> None:
        for sub in ("lists/partial", "cache/archives/partial", "empty"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.sources_list.write_text("\n".join(index_lines(mirrors)) + "\n", encoding="utf-8")
        output = self.run(["apt-get", "update"])
        # apt-get update exits 0 when an index failed to verify; that is an error here.
        bad = [line for line in output.splitlines() if line.startswith(("W:", "E:", "Err:"))]
        if bad:
            raise SourceError(f"apt-get update: {bad[0]}")


@dataclass(frozen=True)
class SourceFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DebianSource:
    """A verified source package in the cache."""

    source: str
    version: str
    directory: Path
    files: tuple[SourceFile, ...]

    @property
    def dsc(self) -> Path:
        return self.directory / next(f.name for f in self.files if f.name.endswith(".dsc"))

    @property
    def dsc_sha256(self) -> str:
        return next(f.sha256 for f in self.files if f.name.endswith(".dsc"))

    def fields(self) -> dict[str, str]:
        return parse_paragraphs(self.dsc.read_text(encoding="utf-8"))[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _uris(apt: AptState, request: str) -> list[SourceFile]:
    with tempfile.TemporaryDirectory() as empty:  # else apt skips files already present
        output = apt.run(["apt-get", "source", "--print-uris", request], cwd=Path(empty))
    files = []
    for line in output.splitlines():
        match = _URI_RE.match(line)
        if match:
            kind, _, value = match["hash"].partition(":")
            if kind.upper() != "SHA256":
                raise SourceError(f"{match['name']}: the Sources index gives no SHA256 ({kind})")
            files.append(SourceFile(match["name"], int(match["size"]), value))
    if not any(f.name.endswith(".dsc") for f in files):
        raise SourceError(f"apt-get source {request}: no .dsc in its answer")
    return files


def check_files(directory: Path, files: tuple[SourceFile, ...]) -> None:
    for entry in files:
        path = directory / entry.name
        if not path.is_file():
            raise SourceError(f"{entry.name} is missing from {directory}")
        actual = sha256_file(path)
        if actual != entry.sha256 or path.stat().st_size != entry.size:
            raise SourceError(
                f"{entry.name}: SHA256 {actual[:16]}… does not match the signed "
                f"Sources index ({entry.sha256[:16]}…)"
            )


def fetch_source(
    apt: AptState, cache: BuildCache, spec: PackageSpec, version: str | None = None
) -> DebianSource:
    """Download ``spec``'s source (the pinned version, else the suite's newest)."""
    wanted = version or spec.version
    request = f"{spec.source}={wanted}" if wanted else spec.source
    files = tuple(_uris(apt, request))
    dsc = next(f.name for f in files if f.name.endswith(".dsc"))
    found = dsc.removeprefix(f"{spec.source}_").removesuffix(".dsc")
    directory = cache.sources / spec.source
    directory.mkdir(parents=True, exist_ok=True)
    try:
        check_files(directory, files)
    except SourceError:
        apt.run(["apt-get", "source", "--download-only", request], cwd=directory)
        check_files(directory, files)
    source = DebianSource(spec.source, found, directory, files)
    # The .dsc's Version carries the epoch the file name drops.
    return DebianSource(spec.source, source.fields()["Version"], directory, files)


def unpack(source: DebianSource, target: Path) -> None:
    """``dpkg-source -x`` (checks the files against the .dsc, applies Debian's patches)."""
    result = subprocess.run(
        ["dpkg-source", "--no-copy", "-x", str(source.dsc), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = [line for line in result.stdout.splitlines() if "error" in line]
        raise SourceError(f"dpkg-source -x {source.dsc.name}: {(tail or ['failed'])[-1]}")
