"""``DIGESTS`` (SHA-256 and SHA-512 of every artifact) and its detached signature.

``DIGESTS.sig`` is a signature blob in the payload format (wellcar.payload.signing: one
or more RSA/Ed25519 signatures, each naming its key) over the SHA-256 of DIGESTS, made
with the vendor's payload key (`wellcar keys generate`). People who download an image
by hand check it with the public key; nodes rely on the TUF targets instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from wellcar.payload.errors import PayloadError
from wellcar.payload.manifest import decode_signatures
from wellcar.payload.signing import SigningKey, TrustedKeys, sign_digest
from wellcar.release.errors import ReleaseError

DIGESTS = "DIGESTS"
SIGNATURE = "DIGESTS.sig"


def _hashes(path: Path) -> tuple[str, str]:
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            sha256.update(chunk)
            sha512.update(chunk)
    return sha256.hexdigest(), sha512.hexdigest()


def render_digests(directory: Path, names: list[str]) -> str:
    hashes = {name: _hashes(directory / name) for name in sorted(names)}
    lines = ["# SHA256 HASH"]
    lines += [f"{h[0]}  {name}" for name, h in hashes.items()]
    lines += ["# SHA512 HASH"]
    lines += [f"{h[1]}  {name}" for name, h in hashes.items()]
    return "\n".join(lines) + "\n"


def write_signed_digests(directory: Path, names: list[str], keys: list[SigningKey]) -> None:
    text = render_digests(directory, names).encode()
    (directory / DIGESTS).write_bytes(text)
    (directory / SIGNATURE).write_bytes(sign_digest(hashlib.sha256(text).digest(), keys))


def verify_digests(directory: Path, trusted: TrustedKeys) -> list[str]:
    """Check the signature, then every listed file; return the names checked."""
    try:
        text = (directory / DIGESTS).read_bytes()
        blob = (directory / SIGNATURE).read_bytes()
    except OSError as exc:
        raise ReleaseError(f"{exc.filename}: {exc.strerror}") from None
    try:
        trusted.verify(hashlib.sha256(text).digest(), decode_signatures(blob))
    except PayloadError as exc:
        raise ReleaseError(f"{directory / DIGESTS}: {exc}") from None
    checked = []
    section = ""
    for line in text.decode().splitlines():
        if line.startswith("#"):
            section = line
            continue
        digest, _, name = line.partition("  ")
        if "SHA256" in section:
            if _hashes(directory / name)[0] != digest:
                raise ReleaseError(f"{directory / name} does not match the signed DIGESTS")
            checked.append(name)
    return checked
