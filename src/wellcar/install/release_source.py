"""Which file of the release tree to install, and what the release keys say it is.

TUF first: with a trusted root (the one the image ships, or ``--trust-root``) and a tree
that has TUF metadata, the root chain, timestamp, snapshot and targets are verified
(python-tuf, wellcar.trust.client) and the disk image is the signed target of the
channel, board and version asked (``current``: the newest signed one). A tree without
TUF metadata falls back to the signed DIGESTS of the version directory (payload keys),
which must name the release asked. A tree *with* TUF metadata that does not verify is
refused, never read through DIGESTS instead (that would let a mirror choose the check).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wellcar.install.errors import SourceError, VerificationError
from wellcar.install.image_stream import ExpectedImage
from wellcar.install.tree_access import LocalFetcher, NotInTree, TreeLocation
from wellcar.release.image_artifacts import DISK_IMAGE, READ_COMPRESSIONS

# The names the disk image may have in a version directory, preferred first: the table's,
# then the same image stored another way a reader accepts (a mirror may recompress).
DISK_NAMES = tuple(
    dict.fromkeys(
        [DISK_IMAGE.tree_name, *(DISK_IMAGE.build_name + c.suffix for c in READ_COMPRESSIONS)]
    )
)
CURRENT = "current"
DIGESTS_LIMIT = 1 << 20
SIGNATURE_LIMIT = 64 << 10
VERSION_TXT_LIMIT = 64 << 10
TIMESTAMP = "metadata/timestamp.json"


@dataclass(frozen=True)
class ReleaseChoice:
    """What the user asked for."""

    channel: str
    board: str
    version: str  # MAJOR.MINOR.PATCH or "current"


@dataclass(frozen=True)
class ResolvedImage:
    expected: ExpectedImage
    relative: str  # path in the tree
    version: str

    def open(self, location: TreeLocation, limit: int) -> Iterator[bytes]:
        return location.stream(self.relative, self.expected.length or limit)


def _version_key(text: str) -> tuple[int, ...] | None:
    from wellcar.trust.client import version_key

    return version_key(text)


def resolve_with_tuf(
    location: TreeLocation, choice: ReleaseChoice, trusted_root: Path
) -> ResolvedImage:
    from wellcar.trust.client import TrustedUpdateVerifier
    from wellcar.trust.errors import TrustError

    with tempfile.TemporaryDirectory(prefix="wellcar-install-tuf-") as cache:
        fetcher = LocalFetcher(location) if location.root is not None else None
        verifier = TrustedUpdateVerifier(
            Path(cache), trusted_root, location.base, board=choice.board, fetcher=fetcher
        )
        try:
            verifier.refresh()
            targets = verifier.targets()
        except TrustError as exc:
            raise VerificationError(f"the release tree's TUF metadata: {exc}") from None
    images = [
        t for t in targets if t.name.rsplit("/", 1)[-1] in DISK_NAMES and t.board == choice.board
    ]
    if choice.version == CURRENT:
        mine = [t for t in images if t.channel == choice.channel]
        if not mine:
            channels = sorted({t.channel for t in images}) or ["none"]
            raise SourceError(
                f"no signed disk image in channel {choice.channel} for {choice.board} "
                f"(channels with one: {', '.join(channels)}); pass -C with one of them"
            )
        newest = max(_version_key(t.version) or (0,) for t in mine)
        mine = [t for t in mine if (_version_key(t.version) or (0,)) == newest]
    else:
        mine = [t for t in images if t.version == choice.version]
        if not mine:
            known = sorted(
                {t.version for t in images if t.channel == choice.channel},
                key=lambda v: _version_key(v) or (0,),
            )
            raise SourceError(
                f"no signed disk image of version {choice.version} for {choice.board} "
                f"(channel {choice.channel} has {', '.join(known[-5:]) or 'none'}); "
                "pass -V current or one of those"
            )
        if all(t.channel != choice.channel for t in mine):
            raise SourceError(
                f"version {choice.version} is in channel {mine[0].channel}, not "
                f"{choice.channel}: pass -C {mine[0].channel}"
            )
        mine = [t for t in mine if t.channel == choice.channel]
    mine.sort(key=lambda t: DISK_NAMES.index(t.name.rsplit("/", 1)[-1]))
    target = mine[0]
    hashes = {a: h for a, h in target.hashes.items() if a in ("sha256", "sha512")}
    if not hashes:
        raise VerificationError(f"{target.name} is signed without a SHA-256 or SHA-512 hash")
    expected = ExpectedImage(target.name, target.length, hashes, "signed TUF targets")
    return ResolvedImage(expected, target.name, target.version)


def _current_version(location: TreeLocation, choice: ReleaseChoice) -> str:
    relative = f"{choice.channel}/{choice.board}/{CURRENT}/version.txt"
    try:
        text = location.read_small(relative, VERSION_TXT_LIMIT).decode("utf-8", "replace")
    except NotInTree:
        raise SourceError(
            f"no release in channel {choice.channel} for {choice.board} in {location} "
            f"({relative} is missing): check -C and -B"
        ) from None
    from wellcar.release.build_dir import parse_version_txt

    try:
        return str(parse_version_txt(text))
    except ValueError as exc:
        raise SourceError(f"{location.url(relative)}: {exc}") from None


def resolve_with_digests(
    location: TreeLocation, choice: ReleaseChoice, trusted_keys: list[Path]
) -> ResolvedImage:
    from wellcar.payload.errors import PayloadError
    from wellcar.payload.signing import load_trusted_keys
    from wellcar.release.digests import DIGESTS, SIGNATURE, read_signed_digests
    from wellcar.release.errors import ReleaseError

    version = _current_version(location, choice) if choice.version == CURRENT else choice.version
    directory = f"{choice.channel}/{choice.board}/{version}"
    try:
        text = location.read_small(f"{directory}/{DIGESTS}", DIGESTS_LIMIT)
        blob = location.read_small(f"{directory}/{SIGNATURE}", SIGNATURE_LIMIT)
    except NotInTree:
        raise SourceError(
            f"no release {version} in channel {choice.channel} for {choice.board} in "
            f"{location} (no {directory}/{DIGESTS}): check -V, -C and -B"
        ) from None
    try:
        keys = load_trusted_keys(trusted_keys)
    except (PayloadError, OSError) as exc:
        raise VerificationError(f"the trusted payload keys: {exc}") from None
    try:
        signed = read_signed_digests(text, blob, keys, Path(directory) / DIGESTS)
    except ReleaseError as exc:
        raise VerificationError(str(exc)) from None
    identity = signed.identity
    assert identity is not None  # unbound DIGESTS are refused by read_signed_digests
    asked = (version, choice.board, choice.channel)
    if (identity.version, identity.board, identity.channel) != asked:
        raise VerificationError(
            f"{directory}/{DIGESTS} is signed for {identity}, not {version} "
            f"({choice.channel}/{choice.board}): the mirror mixes releases; refusing"
        )
    name = next((n for n in DISK_NAMES if n in signed.sha256), None)
    if name is None:
        raise SourceError(f"release {version} has no disk image ({', '.join(DISK_NAMES)})")
    hashes = {"sha256": signed.sha256[name], "sha512": signed.sha512[name]}
    expected = ExpectedImage(f"{directory}/{name}", None, hashes, "signed DIGESTS")
    return ResolvedImage(expected, f"{directory}/{name}", version)


def has_tuf_metadata(location: TreeLocation) -> bool:
    try:
        location.read_small(TIMESTAMP, 64 << 10)
    except NotInTree:
        return False
    return True
