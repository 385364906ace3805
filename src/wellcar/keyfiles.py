"""Key file names, shared by payload keys (`wellcar keys`) and TUF keys (`wellcar trust
keys`): one family, one scheme.

``NAME.key`` is the private key (PKCS#8 PEM, unencrypted, mode 0600) and ``NAME.pub`` its
public key (SubjectPublicKeyInfo PEM). ``.key`` rather than ``.pem`` because both halves
are PEM: the suffix says which half a file is. Earlier versions wrote TUF private keys as
``NAME.pem``; those are still read (:data:`LEGACY_PRIVATE_SUFFIX`).
"""

from __future__ import annotations

from pathlib import Path

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
# Accepted on input only: old TUF private keys, and public keys named *.pem by hand.
LEGACY_PRIVATE_SUFFIX = ".pem"
PEM_SUFFIXES = (PRIVATE_SUFFIX, PUBLIC_SUFFIX, LEGACY_PRIVATE_SUFFIX)


def key_pair_paths(prefix: Path) -> tuple[Path, Path]:
    """``PREFIX.key`` and ``PREFIX.pub`` (the prefix may itself contain dots)."""
    return prefix.with_name(prefix.name + PRIVATE_SUFFIX), prefix.with_name(
        prefix.name + PUBLIC_SUFFIX
    )


def is_public_pem(path: Path) -> bool:
    """Whether a ``.pem`` file holds a public key (so a directory scan for private keys
    can pass over it instead of failing)."""
    try:
        with path.open("rb") as src:
            return b"PUBLIC KEY" in src.readline()
    except OSError:
        return False


# What a directory of trusted public keys (an image's payload-key-dir, the node's
# update-payload-keys) may hold: NAME.pub, and public keys named *.pem as before.
PUBLIC_KEY_SUFFIXES = (PUBLIC_SUFFIX, LEGACY_PRIVATE_SUFFIX)


def public_key_files(directory: Path) -> list[Path]:
    """The public key files of a trusted-keys directory, sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PUBLIC_KEY_SUFFIXES)
