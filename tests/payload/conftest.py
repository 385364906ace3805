"""Shared fixtures: synthetic /usr images, kernel and initrd, signing keys, generated payloads.

Everything here is session scoped and read-only: a test that corrupts or re-signs a payload
copies it into its own ``tmp_path`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from wellcar.payload.generate import PayloadInputs, generate_payload
from wellcar.payload.signing import SigningKey, TrustedKey, TrustedKeys, write_key_pair

from .helpers import FAST, make_blob, make_new_image, make_old_image

OLD_BLOCKS = 1024  # 4 MiB; the new image is 8 blocks longer


@dataclass(frozen=True)
class Images:
    dir: Path
    old: Path
    new: Path
    kernel: Path
    initrd: Path
    other_old: Path  # same size as ``old``, different content

    @property
    def new_bytes(self) -> bytes:
        return self.new.read_bytes()


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey
    ed25519: SigningKey
    stranger: SigningKey  # an RSA key no verifier in these tests trusts
    dir: Path  # PEM files: rsa.key/rsa.pub, ed25519.key/ed25519.pub, stranger.key/...

    @staticmethod
    def trust(*keys: SigningKey) -> TrustedKeys:
        return TrustedKeys(tuple(TrustedKey(k.public_key, k.source) for k in keys))


@dataclass(frozen=True)
class Payloads:
    full: Path  # Wellcar layout, signed by rsa
    full_unsigned: Path
    delta: Path  # old -> new, signed by rsa
    flatcar: Path  # --flatcar-compatible, signed by rsa (signatures last)
    with_boot: Path  # full /usr + kernel + initrd, signed by ed25519
    two_keys: Path  # signed by rsa and ed25519


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    root = tmp_path_factory.mktemp("images")
    old = make_old_image(OLD_BLOCKS, seed=1)
    new = make_new_image(old, seed=2)
    paths = Images(
        dir=root,
        old=root / "old-usr.img",
        new=root / "new-usr.img",
        kernel=root / "vmlinuz",
        initrd=root / "initrd.img",
        other_old=root / "other-usr.img",
    )
    paths.old.write_bytes(old)
    paths.new.write_bytes(new)
    paths.kernel.write_bytes(make_blob(600_001, seed=3))
    paths.initrd.write_bytes(make_blob(250_123, seed=4))
    paths.other_old.write_bytes(make_old_image(OLD_BLOCKS, seed=9))
    return paths


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    made: dict[str, SigningKey] = {}
    for name, private in (
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
        ("stranger", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ):
        write_key_pair(private, root / f"{name}.key", root / f"{name}.pub")
        made[name] = SigningKey(private, str(root / f"{name}.key"))
    return Keys(made["rsa"], made["ed25519"], made["stranger"], root)


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory, images: Images, keys: Keys) -> Payloads:
    root = tmp_path_factory.mktemp("payloads")
    made = Payloads(
        full=root / "full.crau",
        full_unsigned=root / "full-unsigned.crau",
        delta=root / "delta.crau",
        flatcar=root / "flatcar.crau",
        with_boot=root / "with-boot.crau",
        two_keys=root / "two-keys.crau",
    )
    generate_payload(PayloadInputs(images.new), made.full, [keys.rsa], FAST)
    generate_payload(PayloadInputs(images.new), made.full_unsigned, [], FAST)
    generate_payload(PayloadInputs(images.new, images.old), made.delta, [keys.rsa], FAST)
    generate_payload(
        PayloadInputs(images.new),
        made.flatcar,
        [keys.rsa],
        replace(FAST, flatcar_compatible=True),
    )
    generate_payload(
        PayloadInputs(images.new, kernel=images.kernel, initrd=images.initrd),
        made.with_boot,
        [keys.ed25519],
        FAST,
    )
    generate_payload(PayloadInputs(images.new), made.two_keys, [keys.rsa, keys.ed25519], FAST)
    return made


@pytest.fixture
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> int:
    """Checkpoint after every MiB written instead of every 64 MiB."""
    monkeypatch.setattr("wellcar.payload.apply.CHECKPOINT_BYTES", 1 << 20)
    return 1 << 20
