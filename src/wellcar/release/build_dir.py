"""What `wellcar build` left in its output directory, checked before anything is released.

The format (docs/release.md, "The build directory"), which a directory made by hand must
follow too:

- ``update.payload``: a *full* update payload (a delta one only applies on top of one
  exact /usr, so it cannot be a release's payload);
- ``version.txt``: ``<PREFIX>_VERSION=MAJOR.MINOR.PATCH``, PREFIX being the brand's ID in
  capitals (``WELLCAR`` by default, as Flatcar has ``FLATCAR_VERSION=``);
- ``packages.txt``: the package manifest, one ``NAME=VERSION`` line per package (``#``
  comments and blank lines allowed);
- ``SHA256SUMS``: ``sha256sum`` output (text ``HASH  NAME``, binary ``HASH *NAME`` or
  ``--tag``) listing every file that is released: the three above and whichever of
  :data:`OPTIONAL` are there. Other files (``build.log``) are not released.

Every problem is found before any is reported, so one run says everything to fix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from wellcar.image.settings import BrandProfile
from wellcar.image.version import OsVersion, parse_os_version
from wellcar.payload.errors import PayloadError
from wellcar.payload.inspect import describe_payload
from wellcar.release.errors import BuildDirError
from wellcar.release.image_artifacts import IMAGE_ARTIFACTS

PAYLOAD = "update.payload"
# Released when present; the first three must be there (a node needs the payload, and
# the notes and feeds need the version and the package manifest). The optional ones are
# the image artifacts table's (release.image_artifacts).
REQUIRED = (PAYLOAD, "version.txt", "packages.txt")
OPTIONAL = tuple(artifact.build_name for artifact in IMAGE_ARTIFACTS)
SUMS = "SHA256SUMS"
VERSION_KEY = "_VERSION"  # version.txt's key is <PREFIX>_VERSION
EXAMPLE_PREFIX = BrandProfile().prefix

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")  # sha256sum [-b]
_TAG_LINE = re.compile(r"^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$")  # sha256sum --tag


def sha256_file(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def parse_packages(text: str) -> dict[str, str]:
    """``name=version`` lines (the build's package manifest)."""
    packages: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, version = line.split("=", 1)
        packages[name.strip()] = version.strip()
    return packages


def _package_problems(text: str) -> list[str]:
    bad = [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#") and "=" not in line
    ]
    problems = []
    if bad:
        lines = ", ".join(map(str, bad[:5])) + ("…" if len(bad) > 5 else "")
        problems.append(
            f"packages.txt line {lines} is not NAME=VERSION: write one `NAME=VERSION` per "
            "package (`dpkg-query -W -f '${Package}=${Version}\\n'` in the image)"
        )
    if not parse_packages(text):
        problems.append(
            "packages.txt lists no packages: write the image's manifest, one NAME=VERSION per line"
        )
    return problems


def parse_version_txt(text: str) -> OsVersion:
    """The ``<PREFIX>_VERSION=`` line of version.txt (the prefix is the brand's)."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(VERSION_KEY) and not key.endswith("_SDK_VERSION"):
            return parse_os_version(value.strip().strip('"'))
    raise ValueError(
        f"no <PREFIX>{VERSION_KEY}= line: PREFIX is the brand's ID in capitals, e.g. "
        f"{EXAMPLE_PREFIX}{VERSION_KEY}=4799.2.0; add that line"
    )


def parse_sums(text: str) -> tuple[dict[str, str], list[str]]:
    """``sha256sum`` output (text, ``-b`` binary or ``--tag``): name -> lowercase digest,
    and one problem per line that is none of those."""
    listed: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if match := _SUM_LINE.match(line):
            digest, name = match.groups()
        elif match := _TAG_LINE.match(line):
            name, digest = match.groups()
        else:
            problems.append(
                f"{SUMS} line {number} is not sha256sum output (`HASH  NAME` or "
                f"`HASH *NAME`): fix it or write the file again with `sha256sum`"
            )
            continue
        name = name.removeprefix("./")
        if name in listed and listed[name] != digest.lower():
            problems.append(f"{SUMS} lists {name} twice with different hashes: keep one")
        listed[name] = digest.lower()
    return listed, problems


def _payload_problem(path: Path, allow_delta: bool) -> str | None:
    try:
        kind = describe_payload(path).kind
    except (PayloadError, OSError) as exc:
        return (
            f"{PAYLOAD} is not an update payload ({exc}): put the payload `wellcar build` "
            "or `wellcar payload generate` wrote there"
        )
    if kind == "delta" and not allow_delta:
        return (
            f"{PAYLOAD} is a delta payload (it only applies on top of one exact /usr): "
            "release the full payload (`wellcar payload generate` without --old)"
        )
    return None


@dataclass(frozen=True)
class BuildDir:
    path: Path
    version: OsVersion
    packages: dict[str, str]
    artifacts: dict[str, str]  # file name -> sha256

    @classmethod
    def read(cls, path: Path, *, allow_delta: bool = False) -> BuildDir:
        """Check everything, report all problems in one BuildDirError. ``allow_delta``
        accepts a delta update.payload: only for a tree whose every node runs the
        delta's source /usr (the system test's fallback case); no CLI option."""
        if not path.is_dir():
            raise BuildDirError(f"{path} is not a directory (give the output of `wellcar build`)")
        problems: list[str] = []
        for name in REQUIRED:
            if not (path / name).is_file():
                problems.append(f"no {name}: {_MISSING[name]}")
        listed: dict[str, str] = {}
        sums_file = path / SUMS
        if sums_file.is_file():
            listed, bad_lines = parse_sums(sums_file.read_text(encoding="utf-8"))
            problems += bad_lines
        else:
            problems.append(
                f"no {SUMS}: write it in the directory with `sha256sum {' '.join(REQUIRED)} "
                f"[{' '.join(OPTIONAL)}] > {SUMS}` (the files that are there)"
            )
        artifacts: dict[str, str] = {}
        for name in (*REQUIRED, *OPTIONAL):
            file = path / name
            if not file.is_file():
                if name in listed and name not in REQUIRED:
                    problems.append(
                        f"{SUMS} lists {name} but it is not there: copy it back, or delete its line"
                    )
                continue
            digest = sha256_file(file)
            if sums_file.is_file() and name not in listed:
                problems.append(
                    f"{name} is not listed in {SUMS}: add it (`sha256sum {name} >> {SUMS}`), "
                    "or remove the file"
                )
            elif name in listed and listed[name] != digest:
                problems.append(
                    f"{name} does not match {SUMS} (it changed after the sums were made): "
                    f"put the built file back, or if this one is right, replace its line "
                    f"with `sha256sum {name}`"
                )
            artifacts[name] = digest
        version: OsVersion | None = None
        if (path / "version.txt").is_file():
            try:
                version = parse_version_txt((path / "version.txt").read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"version.txt: {exc}")
        packages: dict[str, str] = {}
        if (path / "packages.txt").is_file():
            text = (path / "packages.txt").read_text(encoding="utf-8")
            problems += _package_problems(text)
            packages = parse_packages(text)
        if (path / PAYLOAD).is_file():
            payload_problem = _payload_problem(path / PAYLOAD, allow_delta)
            if payload_problem:
                problems.append(payload_problem)
        if len(problems) == 1:
            raise BuildDirError(f"{path}: {problems[0]}")
        if problems:
            numbered = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
            raise BuildDirError(f"{path} has {len(problems)} problems: {numbered}")
        assert version is not None
        return cls(path, version, packages, artifacts)


_MISSING = {
    PAYLOAD: "make it with `wellcar payload generate --new usr.img -o update.payload --key "
    "PAYLOAD.key` (full, not --old), or use a finished `wellcar build` output",
    "version.txt": f"write `{EXAMPLE_PREFIX}{VERSION_KEY}=MAJOR.MINOR.PATCH` into it "
    "(your brand's prefix; `wellcar release version` prints the version)",
    "packages.txt": "write the image's package manifest into it, one NAME=VERSION per line",
}
