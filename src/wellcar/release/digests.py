"""``DIGESTS`` (SHA-256 and SHA-512 of every file of a release) and its signature.

``DIGESTS.sig`` is a signature blob in the payload format (wellcar.payload.signing: one
or more RSA/Ed25519 signatures, each naming its key) over the SHA-256 of DIGESTS, made
with the vendor's payload key (`wellcar keys generate`). People who download an image
by hand check it with the public key; nodes rely on the TUF targets instead.

The format (this module is its only reader and writer)::

    # wellcar-digests 2
    # version 4799.2.0
    # board amd64-usr
    # channel stable
    # SHA256 HASH
    <sha256>  <name>           one line per file of the version directory
    # SHA512 HASH
    <sha512>  <name>

The release's version, board and channel are inside the signed text, so a signed
DIGESTS cannot be passed off as another release's; and it lists every file of the
version directory except itself and its signature, so a file it does not list is
foreign. The ``#`` lines keep Flatcar's hash sections readable by the same tools.

Format 1 (before the release was named inside) is refused unless the caller allows it
(`--allow-unbound`): its signature says nothing about which release it belongs to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from wellcar.image.version import parse_os_version
from wellcar.payload.errors import PayloadError
from wellcar.payload.manifest import decode_signatures
from wellcar.payload.signing import SigningKey, TrustedKeys, sign_digest
from wellcar.release.boards import BOARDS
from wellcar.release.channels import check_channel
from wellcar.release.errors import ChannelError, ReleaseError

DIGESTS = "DIGESTS"
SIGNATURE = "DIGESTS.sig"
FORMAT_LINE = "# wellcar-digests 2"
FIELDS = ("version", "board", "channel")
_SHA256, _SHA512 = "# SHA256 HASH", "# SHA512 HASH"


class DigestsError(ReleaseError):
    """DIGESTS is unsigned, for another release, or does not match the files."""


@dataclass(frozen=True)
class ReleaseIdentity:
    """Which release a DIGESTS belongs to (signed inside it)."""

    version: str
    board: str
    channel: str

    def __str__(self) -> str:
        return f"{self.version} ({self.channel}/{self.board})"


@dataclass(frozen=True)
class Expected:
    """What the person verifying asks about; ``None`` = not known, not checked."""

    version: str | None = None
    board: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class DigestsCheck:
    identity: ReleaseIdentity | None  # None: an unbound (format 1) DIGESTS, allowed
    files: list[str]  # names checked
    unchecked: list[str]  # fields of the identity nobody said what to expect


def _hashes(path: Path) -> tuple[str, str]:
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            sha256.update(chunk)
            sha512.update(chunk)
    return sha256.hexdigest(), sha512.hexdigest()


def listed_files(directory: Path) -> list[str]:
    """Every entry of a version directory that DIGESTS must list."""
    return sorted(p.name for p in directory.iterdir() if p.name not in (DIGESTS, SIGNATURE))


def render_digests(directory: Path, names: list[str], identity: ReleaseIdentity) -> str:
    hashes = {name: _hashes(directory / name) for name in sorted(names)}
    lines = [FORMAT_LINE, *(f"# {f} {getattr(identity, f)}" for f in FIELDS), _SHA256]
    lines += [f"{h[0]}  {name}" for name, h in hashes.items()]
    lines += [_SHA512]
    lines += [f"{h[1]}  {name}" for name, h in hashes.items()]
    return "\n".join(lines) + "\n"


def write_signed_digests(
    directory: Path, identity: ReleaseIdentity, keys: list[SigningKey]
) -> list[str]:
    """Write DIGESTS over every file now in ``directory`` and sign it; return the names.
    Call it last, when the directory holds everything it will ever hold."""
    names = listed_files(directory)
    text = render_digests(directory, names, identity).encode()
    (directory / DIGESTS).write_bytes(text)
    (directory / SIGNATURE).write_bytes(sign_digest(hashlib.sha256(text).digest(), keys))
    return names


def expected_from_path(directory: Path) -> Expected:
    """What a tree path ``<channel>/<board>/<version>`` says the release is (``current``
    resolves to its version). Parts that do not look like that are left unknown."""
    parts = directory.resolve().parts
    try:
        version = str(parse_os_version(parts[-1]))
    except (ValueError, IndexError):
        return Expected()
    board = parts[-2] if len(parts) >= 2 and parts[-2] in BOARDS else None
    channel = None
    if board is not None and len(parts) >= 3:
        try:
            channel = check_channel(parts[-3])
        except ChannelError:
            channel = None
    return Expected(version, board, channel)


@dataclass
class _Parsed:
    fields: dict[str, str]
    sha256: dict[str, str]
    sha512: dict[str, str]
    bound: bool


def _parse(text: str, where: Path) -> _Parsed:
    parsed = _Parsed({}, {}, {}, False)
    section: dict[str, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line == FORMAT_LINE:
            parsed.bound = True
        elif line == _SHA256:
            section = parsed.sha256
        elif line == _SHA512:
            section = parsed.sha512
        elif line.startswith("#"):
            key, _, value = line[1:].strip().partition(" ")
            if section is None and key in FIELDS:
                parsed.fields[key] = value.strip()
        elif line.strip() and section is not None:
            digest, sep, name = line.partition("  ")
            # A listed name is a file of this directory, nothing else (no paths).
            if not sep or not name or "/" in name or name in (".", "..", DIGESTS, SIGNATURE):
                raise DigestsError(f"{where} line {number} is not `HASH  NAME`: {line!r}")
            if name in section:
                raise DigestsError(f"{where} lists {name} twice")
            section[name] = digest
    if parsed.sha256.keys() != parsed.sha512.keys():
        raise DigestsError(f"{where}: its SHA256 and SHA512 sections list different files")
    return parsed


@dataclass(frozen=True)
class SignedDigests:
    """A DIGESTS whose signature verified: the release it names (None: format 1, allowed
    by the caller) and the hashes it lists, name -> hex digest."""

    identity: ReleaseIdentity | None
    sha256: dict[str, str]
    sha512: dict[str, str]


def read_signed_digests(
    text: bytes, blob: bytes, trusted: TrustedKeys, where: Path, *, allow_unbound: bool = False
) -> SignedDigests:
    """Check DIGESTS' signature and read it (for readers that do not hold the files in a
    directory, such as `wellcar install` streaming an image). ``where`` names it in
    messages."""
    try:
        trusted.verify(hashlib.sha256(text).digest(), decode_signatures(blob))
    except PayloadError as exc:
        raise DigestsError(f"{where}: {exc}") from None
    try:
        parsed = _parse(text.decode("utf-8"), where)
    except UnicodeDecodeError:
        raise DigestsError(f"{where} is not UTF-8 text") from None
    if not parsed.bound:
        if not allow_unbound:
            raise DigestsError(
                f"{where} is an old DIGESTS that does not name its release (made before "
                "DIGESTS named it): its signature cannot tell this release from another; check the "
                "release's TUF targets instead, or pass --allow-unbound to check only that "
                "the files match it"
            )
        return SignedDigests(None, parsed.sha256, parsed.sha512)
    missing = [f for f in FIELDS if not parsed.fields.get(f)]
    if missing:
        raise DigestsError(f"{where} does not name the release's {', '.join(missing)}")
    identity = ReleaseIdentity(**{f: parsed.fields[f] for f in FIELDS})
    return SignedDigests(identity, parsed.sha256, parsed.sha512)


def check_digests(
    directory: Path,
    trusted: TrustedKeys,
    expected: Expected | None = None,
    *,
    files: list[str] | None = None,
    allow_unbound: bool = False,
) -> DigestsCheck:
    """Check the signature, that DIGESTS is for the release expected, and the files.

    ``expected`` defaults to what the directory's path says (``expected_from_path``);
    the version must be known one way or the other. With ``files`` only those are
    checked (each must be listed); without, the whole directory: every listed file must
    be there and match, and every file there must be listed."""
    path = directory / DIGESTS
    try:
        text = path.read_bytes()
        blob = (directory / SIGNATURE).read_bytes()
    except OSError as exc:
        raise DigestsError(
            f"{exc.filename}: {exc.strerror}; download DIGESTS and DIGESTS.sig with the files"
        ) from None
    parsed = read_signed_digests(text, blob, trusted, path, allow_unbound=allow_unbound)
    asked = expected or Expected()
    derived = expected_from_path(directory)
    want = {f: getattr(asked, f) or getattr(derived, f) for f in FIELDS}
    identity = parsed.identity
    unchecked: list[str] = []
    if identity is None:
        unchecked = list(FIELDS)
    else:
        if want["version"] is None:
            raise DigestsError(
                f"cannot tell which version {directory} should be (its name is not a "
                f"version): pass --version (DIGESTS says {identity})"
            )
        wrong = [
            f"{f} {getattr(identity, f)}, not {want[f]}"
            for f in FIELDS
            if want[f] is not None and getattr(identity, f) != want[f]
        ]
        if wrong:
            raise DigestsError(
                f"{path} is signed for another release ({'; '.join(wrong)}): do not use "
                "these files as the release you asked for"
            )
        unchecked = [f for f in FIELDS if want[f] is None]
    problems: list[str] = []
    names = sorted(parsed.sha256) if files is None else files
    if files is None:
        problems += [
            f"{n} is not listed in the signed DIGESTS (remove it; it is not part of the release)"
            for n in listed_files(directory)
            if n not in parsed.sha256
        ]
    for name in names:
        if name not in parsed.sha256:
            problems.append(f"{name} is not listed in the signed DIGESTS")
        elif not (directory / name).is_file():
            problems.append(f"{name} is listed but missing (download it again)")
        elif _hashes(directory / name) != (parsed.sha256[name], parsed.sha512[name]):
            problems.append(f"{name} does not match the signed DIGESTS (download it again)")
    if problems:
        raise DigestsError(f"{directory}: {'; '.join(problems)}")
    return DigestsCheck(identity, list(names), unchecked)


def verify_digests(
    directory: Path, trusted: TrustedKeys, expected: Expected | None = None
) -> list[str]:
    """The whole-directory check of :func:`check_digests`; the names checked."""
    return check_digests(directory, trusted, expected).files
