"""The development key set: what a build signs with and ships when it is given no key.

A node whose image trusts no payload key can install no update (its agent has nothing to
verify against), so a build that names no key at all (no ``signing-key``,
``payload-key-dir`` or ``trust-root``) uses a development set, created once in
``dev-keys-dir`` (default ``$XDG_DATA_HOME/wellcar/dev-keys``, i.e.
``~/.local/share/wellcar/dev-keys``) with the project's own key code:

- ``payload/release.key``: the payload signing key (Ed25519, ``wellcar.payload.signing``);
- ``payload-public/release.pem``: its public key, the image's ``payload-key-dir``;
- ``tuf-keys/``: the TUF keys (root, targets, snapshot, timestamp; ``wellcar.trust.keys``);
- ``release-tree/``: a release tree whose TUF repository those keys sign
  (``TrustRepository.initialize``, as ``wellcar trust init``); its
  ``metadata/root.json`` is the image's ``trust-root``, and ``wellcar release create
  --tree`` releases into it.

Every private key is an unencrypted file: the set is for development only, and the CLI
says so each time it is used. A build that names some keys but would ship no trusted
payload key is refused (:func:`check_payload_trust`), never shipped silently.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from wellcar.keyfiles import public_key_files
from wellcar.payload.errors import PayloadError
from wellcar.payload.signing import (
    KeyAlgorithm,
    generate_key,
    load_signing_key,
    load_trusted_keys,
    write_key_pair,
)
from wellcar.trust.errors import TrustError
from wellcar.trust.repository import METADATA_DIR, TrustRepository

from .errors import ImageContentError
from .settings import BuildSettings

STEP = "dev-keys"


@dataclass(frozen=True)
class DevKeys:
    """The layout of a development key set (the one place that names its files)."""

    directory: Path

    @property
    def signing_key(self) -> Path:
        return self.directory / "payload" / "release.key"

    @property
    def payload_key_dir(self) -> Path:
        return self.directory / "payload-public"

    @property
    def public_key(self) -> Path:
        return self.payload_key_dir / "release.pem"

    @property
    def tuf_keys_dir(self) -> Path:
        return self.directory / "tuf-keys"

    @property
    def release_tree(self) -> Path:
        return self.directory / "release-tree"

    @property
    def trust_root(self) -> Path:
        return self.release_tree / METADATA_DIR / "root.json"

    def complete(self) -> bool:
        files = (self.signing_key, self.public_key, self.trust_root)
        return all(path.is_file() for path in files) and self.tuf_keys_dir.is_dir()


@dataclass(frozen=True)
class DevKeysUse:
    """The set a build uses, and whether this build created it."""

    keys: DevKeys
    created: bool


def _create(keys: DevKeys) -> None:
    keys.signing_key.parent.mkdir(parents=True)
    keys.payload_key_dir.mkdir(parents=True)
    write_key_pair(generate_key(KeyAlgorithm.ED25519), keys.signing_key, keys.public_key)
    TrustRepository.initialize(keys.release_tree, keys.tuf_keys_dir)


def ensure_dev_keys(directory: Path) -> DevKeysUse:
    """The set in ``directory``, created there if it does not exist yet. It is made in a
    sibling directory and renamed into place, so an interrupted creation never leaves a
    half set that later builds would use."""
    keys = DevKeys(directory)
    if keys.complete():
        return DevKeysUse(keys, created=False)
    if directory.exists() and any(directory.iterdir()):
        raise ImageContentError(
            STEP,
            f"{directory} is not a complete development key set (no {keys.signing_key.name}, "
            f"{keys.public_key.name} or TUF root); remove it to have a new one made",
        )
    staging = directory.with_name(f".{directory.name}.partial")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        _create(DevKeys(staging))
        if directory.exists():
            directory.rmdir()  # empty, checked above
        staging.rename(directory)
    except (OSError, PayloadError, TrustError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        raise ImageContentError(
            STEP, f"cannot create the development key set in {directory}: {detail}{where}"
        ) from exc
    return DevKeysUse(keys, created=True)


def names_no_key(settings: BuildSettings) -> bool:
    """Whether the build names no key at all, and so gets the development set."""
    brand = settings.brand
    given = (settings.signing_key, brand.payload_key_dir, brand.trust_root)
    return all(path is None for path in given)


def with_dev_keys(settings: BuildSettings) -> tuple[BuildSettings, DevKeysUse | None]:
    """``settings`` with the development set filled in when they name no key (the set is
    created on first use); unchanged, with None, otherwise."""
    if not names_no_key(settings):
        return settings, None
    use = ensure_dev_keys(settings.dev_keys_dir.expanduser())
    brand = replace(
        settings.brand, payload_key_dir=use.keys.payload_key_dir, trust_root=use.keys.trust_root
    )
    return replace(settings, brand=brand, signing_key=use.keys.signing_key), use


def payload_trust_problems(settings: BuildSettings) -> list[str]:
    """Why the image would not trust its own payloads, if it would not: no public payload
    key to ship, or a signing key whose public half is not among the shipped ones."""
    key_dir = settings.brand.payload_key_dir
    if key_dir is None:
        return [
            "the image would carry no trusted payload key, so its agent could install no "
            "update: set payload-key-dir (--brand-payload-key-dir) to the public key(s) of "
            "signing-key, or name no key at all to use the development key set"
        ]
    pems = public_key_files(key_dir)
    if settings.signing_key is None or not pems or not settings.signing_key.is_file():
        return []  # nothing to compare (preflight names missing files itself)
    try:
        signer = load_signing_key(settings.signing_key)
        trusted = load_trusted_keys(pems)
    except PayloadError as exc:
        return [str(exc)]
    if all(key.key_id != signer.key_id for key in trusted.keys):
        return [
            f"signing-key {settings.signing_key} is not one of the public keys in "
            f"payload-key-dir {key_dir}: nodes would refuse this image's own update payload"
        ]
    return []
