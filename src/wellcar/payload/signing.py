"""Payload signing keys and signature checks.

What is signed is the SHA-256 of every payload byte before the signature blob. For an
update_engine-style payload (signatures last) that is the whole payload, exactly what
``core_sign_update`` signs; for Wellcar's layout (signatures first) it is the header and
the manifest, which pin every blob through its SHA-256, so the signature can be checked
before anything is written.

RSA signatures are PKCS#1 v1.5 over that digest with a SHA-256 DigestInfo (version 2, what
update_engine verifies); Ed25519 signatures (version 17) sign the 32-byte digest itself.
A payload may carry several signatures so keys can be rotated; a verifier accepts the
payload when any signature verifies under any key it trusts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from wellcar.keyfiles import public_key_files
from wellcar.payload.errors import PayloadKeyError, PayloadSignatureError
from wellcar.payload.manifest import Signature, Signatures, SignatureVersion, encode_signatures

RSA_BITS = 2048


class KeyAlgorithm(StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def signature_version(self) -> SignatureVersion:
        if self is KeyAlgorithm.RSA:
            return SignatureVersion.RSA_PKCS1_SHA256
        return SignatureVersion.ED25519


PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id_of(key: PublicKey) -> bytes:
    """Eight bytes that name a key in a signature blob (SHA-256 of its public DER)."""
    return hashlib.sha256(_public_der(key)).digest()[:8]


def _algorithm_of(key: PublicKey) -> KeyAlgorithm:
    return KeyAlgorithm.RSA if isinstance(key, rsa.RSAPublicKey) else KeyAlgorithm.ED25519


@dataclass(frozen=True)
class SigningKey:
    private_key: PrivateKey
    source: str

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    @property
    def algorithm(self) -> KeyAlgorithm:
        return _algorithm_of(self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.public_key)

    @property
    def signature_length(self) -> int:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.key_size // 8
        return 64

    def sign(self, digest: bytes) -> Signature:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            data = self.private_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            data = self.private_key.sign(digest)
        return Signature(int(self.algorithm.signature_version), data, self.key_id)


@dataclass(frozen=True)
class TrustedKey:
    public_key: PublicKey
    source: str

    @property
    def algorithm(self) -> KeyAlgorithm:
        return _algorithm_of(self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.public_key)

    def verifies(self, digest: bytes, signature: Signature) -> bool:
        if signature.version != self.algorithm.signature_version:
            return False
        try:
            if isinstance(self.public_key, rsa.RSAPublicKey):
                self.public_key.verify(
                    signature.data, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
                )
            else:
                self.public_key.verify(signature.data, digest)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class TrustedKeys:
    """The set of public keys a verifier accepts."""

    keys: tuple[TrustedKey, ...]

    def verify(self, digest: bytes, signatures: Signatures) -> TrustedKey:
        """Return the trusted key that signed ``digest``; raise if none did."""
        if not signatures.signatures:
            raise PayloadSignatureError("the payload is not signed")
        for signature in signatures.signatures:
            for key in self.keys:
                if key.verifies(digest, signature):
                    return key
        ids = ", ".join(
            s.key_id.hex() if s.key_id else f"version-{s.version}" for s in signatures.signatures
        )
        trusted = ", ".join(k.key_id.hex() for k in self.keys) or "none"
        raise PayloadSignatureError(
            f"no signature verifies under a trusted key (payload signed by: {ids}; trusted: "
            f"{trusted}); the payload is corrupt or signed with a key this node does not trust"
        )


def signatures_size(keys: list[SigningKey]) -> int:
    """Length of the encoded signature blob these keys will produce."""
    placeholder = Signatures(
        tuple(
            Signature(int(k.algorithm.signature_version), bytes(k.signature_length), k.key_id)
            for k in keys
        )
    )
    return len(encode_signatures(placeholder))


def sign_digest(digest: bytes, keys: list[SigningKey]) -> bytes:
    blob = encode_signatures(Signatures(tuple(k.sign(digest) for k in keys)))
    if len(blob) != signatures_size(keys):
        raise PayloadKeyError("a key produced a signature of unexpected length")
    return blob


# --- key files ------------------------------------------------------------------------


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ed25519.Ed25519PrivateKey.generate()


def write_key_pair(key: PrivateKey, private_path: Path, public_path: Path) -> None:
    """Write PKCS#8 private (mode 0600) and SubjectPublicKeyInfo public PEM files."""
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if path.exists():
            raise PayloadKeyError(f"{path} already exists; refusing to overwrite a key")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)


def _read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PayloadKeyError(f"cannot read key {path}: {exc.strerror}") from None


def load_signing_key(path: Path) -> SigningKey:
    data = _read_pem(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PayloadKeyError(
            f"{path} is not an unencrypted PEM private key (create one with "
            "`wellcar keys generate`)"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_BITS:
            raise PayloadKeyError(f"{path}: RSA key of {key.key_size} bits; at least 2048 needed")
        return SigningKey(key, str(path))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningKey(key, str(path))
    raise PayloadKeyError(f"{path}: only RSA and Ed25519 keys can sign payloads")


def load_trusted_key(path: Path) -> TrustedKey:
    data = _read_pem(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PayloadKeyError(f"{path} is not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return TrustedKey(key, str(path))
    raise PayloadKeyError(f"{path}: only RSA and Ed25519 public keys are supported")


def load_trusted_keys(paths: list[Path]) -> TrustedKeys:
    """Load public keys from files and directories (every ``*.pub`` / ``*.pem`` inside)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += public_key_files(path)
        else:
            files.append(path)
    if not files:
        raise PayloadKeyError("no trusted public keys found")
    return TrustedKeys(tuple(load_trusted_key(f) for f in files))
