"""TUF signing keys as files: ``NAME.key`` (PKCS#8 private, mode 0600) + ``NAME.pub``,
named as every Wellcar key is (wellcar.keyfiles; old ``NAME.pem`` private keys are read).

Keys are Ed25519: the node verifies with Debian bookworm's cryptography 38, which
securesystemslib cannot use, so it falls back to its vendored pure-Python Ed25519 —
the only algorithm that works there. A key is named in metadata by its TUF key id
(SHA-256 of its canonical public form), so file names are only for people.

A :class:`Keyring` is every private key found in some directories; a role is signed
with the keys whose ids the role lists, so nobody has to say which file is which role.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner, SSlibKey

from wellcar.keyfiles import LEGACY_PRIVATE_SUFFIX, PRIVATE_SUFFIX, is_public_pem, key_pair_paths
from wellcar.trust.errors import KeyFileError, SigningKeyError


@dataclass(frozen=True)
class GeneratedKey:
    keyid: str
    private_path: Path
    public_path: Path


def generate_key(directory: Path, name: str) -> GeneratedKey:
    """Write a new Ed25519 key pair ``directory/name.key`` and ``.pub``; never overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = key_pair_paths(directory / name)
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return GeneratedKey(SSlibKey.from_crypto(key.public_key()).keyid, private_path, public_path)


def load_signer(path: Path) -> CryptoSigner:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path} is not an unencrypted PEM private key (make one with "
            "`wellcar trust keys generate`)"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{path}: TUF keys must be Ed25519 (nodes verify only Ed25519)")
    return CryptoSigner(key)


def load_public_key(path: Path) -> SSlibKey:
    """A public key from a ``.pub`` (or the public half of a private ``.key``) file."""
    if path.suffix == PRIVATE_SUFFIX or (
        path.suffix == LEGACY_PRIVATE_SUFFIX and not is_public_pem(path)
    ):
        return load_signer(path).public_key
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyFileError(f"{path}: TUF keys must be Ed25519 (nodes verify only Ed25519)")
    return SSlibKey.from_crypto(key)


@dataclass
class Keyring:
    """Private keys by key id, loaded from files and directories (every ``*.key``, and
    old ``*.pem`` private keys)."""

    signers: dict[str, CryptoSigner] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: list[Path]) -> Keyring:
        ring = cls()
        for path in paths:
            if path.is_dir():
                files = sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix == PRIVATE_SUFFIX
                    or (p.suffix == LEGACY_PRIVATE_SUFFIX and not is_public_pem(p))
                )
            elif path.exists():
                files = [path]
            else:
                raise KeyFileError(f"key path {path} does not exist")
            for file in files:
                ring.add(load_signer(file), file)
        return ring

    def add(self, signer: CryptoSigner, source: Path) -> None:
        self.signers[signer.public_key.keyid] = signer
        self.sources[signer.public_key.keyid] = source

    def for_keyids(self, keyids: list[str]) -> list[CryptoSigner]:
        return [self.signers[k] for k in keyids if k in self.signers]

    def require(self, role: str, keyids: list[str], threshold: int) -> list[CryptoSigner]:
        """The signers for a role; raise unless at least ``threshold`` of them are here."""
        found = self.for_keyids(keyids)
        if len(found) < threshold:
            where = ", ".join(sorted({str(p.parent) for p in self.sources.values()})) or "none"
            raise SigningKeyError(
                f"{role} needs {threshold} of its keys ({', '.join(k[:12] for k in keyids)}) "
                f"but only {len(found)} are in the key directories given ({where}); pass "
                f"--keys with the {role} keys, or use the offline flow (`wellcar trust export`)"
            )
        return found
