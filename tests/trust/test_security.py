"""Attacks on the update path, played by the mirror against the real node client.

Each case is refused (or recovered from) as the TUF specification requires; see
docs/trust.md, "Threats".
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from tests.trust.simulator import ENDLESS, RepoSim
from wellcar.trust.errors import (
    MetadataExpiredError,
    MetadataInconsistentError,
    MetadataRollbackError,
    MetadataSignatureError,
    MetadataTooLargeError,
    TargetBoardError,
    TargetDowngradeError,
    TargetMismatchError,
    UnknownTargetError,
)
from wellcar.trust.keys import Keyring, generate_key, load_public_key
from wellcar.trust.repository import RootChange

RUNNING = "4790.2.0"


def test_a_signed_payload_is_admitted(sim: RepoSim, tmp_path: Path) -> None:
    name = sim.release("4799.2.0")
    client = sim.client()
    state = client.refresh()
    assert state.targets_version == 2
    target = client.find_payload("4799.2.0")
    assert (target.name, target.channel, target.board) == (name, "stable", "amd64-usr")
    local = tmp_path / "downloaded.payload"
    local.write_bytes(b"payload 4799.2.0")
    assert client.verify_payload(name, local, RUNNING).sha256 == target.sha256
    path, _ = client.download_target(name, tmp_path / "dl", RUNNING)
    assert path.read_bytes() == b"payload 4799.2.0"


def test_unsigned_file_and_wrong_board_are_refused(sim: RepoSim, tmp_path: Path) -> None:
    sim.release("4799.2.0", board="arm64-usr")
    stray = sim.tree / "stable/amd64-usr/4800.2.0/update.payload"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"never signed")
    client = sim.client()
    with pytest.raises(UnknownTargetError, match="not a target signed"):
        client.verify_payload("stable/amd64-usr/4800.2.0/update.payload", stray, RUNNING)
    with pytest.raises(UnknownTargetError, match="no signed update payload of version 4799"):
        client.find_payload("4799.2.0")
    local = tmp_path / "p"
    local.write_bytes(b"payload 4799.2.0")
    with pytest.raises(TargetBoardError, match="arm64-usr"):
        client.verify_payload("stable/arm64-usr/4799.2.0/update.payload", local, RUNNING)


def test_rollback_to_an_older_signed_release_is_refused(sim: RepoSim, tmp_path: Path) -> None:
    old = sim.release("4700.2.0")
    sim.release("4799.2.0")
    local = tmp_path / "old.payload"
    local.write_bytes(b"payload 4700.2.0")
    client = sim.client()
    with pytest.raises(TargetDowngradeError, match=r"older than the running 4790\.2\.0"):
        client.verify_payload(old, local, RUNNING)
    with pytest.raises(TargetDowngradeError):
        client.download_target(old, tmp_path / "dl", RUNNING)
    # The same version as the running one may be reinstalled (repair).
    assert client.verify_payload(old, local, "4700.2.0").version == "4700.2.0"


def test_metadata_rollback_is_refused(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    old_timestamp = sim.metadata("timestamp.json")
    sim.release("4800.2.0")
    assert sim.client().refresh().timestamp_version == 3
    sim.overrides["metadata/timestamp.json"] = old_timestamp
    with pytest.raises(MetadataRollbackError, match="older than this node already trusts"):
        sim.client().refresh()


def test_freeze_with_an_old_expired_timestamp_is_refused(sim: RepoSim) -> None:
    # The repository signed a timestamp two days ago (lifetime: one day) and an
    # attacker keeps replaying it.
    sim.advance(-2 * 86400)
    sim.release("4799.2.0")
    with pytest.raises(MetadataExpiredError, match="stale metadata"):
        sim.client().refresh()


def test_freeze_of_a_node_that_saw_newer_metadata(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    replay = sim.metadata("timestamp.json")
    sim.repo.refresh_online(sim.keyring("snapshot", "timestamp"), now=sim.now)
    client = sim.client()
    client.refresh()
    sim.overrides["metadata/timestamp.json"] = replay
    with pytest.raises(MetadataRollbackError):
        sim.client().refresh()


def test_mix_and_match_snapshot_is_refused(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    old_snapshot = sim.metadata("2.snapshot.json")
    sim.release("4800.2.0")
    # The current timestamp names snapshot v3 by hash; serve v2's bytes under that name.
    sim.overrides["metadata/3.snapshot.json"] = old_snapshot
    with pytest.raises(MetadataInconsistentError, match="tampered"):
        sim.client().refresh()


def test_mix_and_match_targets_is_refused(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    old_targets = sim.metadata("2.targets.json")
    sim.release("4800.2.0")
    sim.overrides["metadata/3.targets.json"] = old_targets
    with pytest.raises(MetadataRollbackError, match="Expected targets v3, got v2"):
        sim.client().refresh()


def test_tampered_payload_is_refused(sim: RepoSim, tmp_path: Path) -> None:
    name = sim.release("4799.2.0", content=b"A" * 4096)
    client = sim.client()
    tampered = tmp_path / "tampered"
    tampered.write_bytes(b"A" * 4095 + b"B")
    with pytest.raises(TargetMismatchError, match="corrupt or tampered"):
        client.verify_payload(name, tampered, RUNNING)
    short = tmp_path / "short"
    short.write_bytes(b"A" * 100)
    with pytest.raises(TargetMismatchError):
        client.verify_payload(name, short, RUNNING)
    sim.overrides[name] = b"A" * 4095 + b"B"
    with pytest.raises(TargetMismatchError, match="does not match"):
        client.download_target(name, tmp_path / "dl", RUNNING)


def _forge(sim: RepoSim, targets: Metadata[Targets]) -> None:
    """An attacker holding the online keys publishes its own targets/snapshot/timestamp."""
    ring = sim.keyring("snapshot", "timestamp")
    (snapshot_signer,) = ring.for_keyids(sim.repo.root().signed.roles["snapshot"].keyids)
    (timestamp_signer,) = ring.for_keyids(sim.repo.root().signed.roles["timestamp"].keyids)
    pretty = JSONSerializer(compact=False)
    targets.signed.version = 99
    targets.signatures.clear()
    targets.sign(snapshot_signer)  # the attacker has no targets key
    sim.overrides["metadata/99.targets.json"] = targets.to_bytes(pretty)
    snapshot = Metadata(
        Snapshot(
            version=50, expires=sim.now + timedelta(days=1), meta={"targets.json": MetaFile(99)}
        )
    )
    snapshot.sign(snapshot_signer)
    raw = snapshot.to_bytes(pretty)
    sim.overrides["metadata/50.snapshot.json"] = raw
    timestamp = Metadata(
        Timestamp(
            version=50,
            expires=sim.now + timedelta(days=1),
            snapshot_meta=MetaFile.from_data(50, raw, ["sha256"]),
        )
    )
    timestamp.sign(timestamp_signer)
    sim.overrides["metadata/timestamp.json"] = timestamp.to_bytes(pretty)


def test_compromised_online_keys_cannot_add_a_payload(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    evil = sim.repo.targets()
    evil.signed.targets["stable/amd64-usr/9999.2.0/update.payload"] = TargetFile.from_data(
        "stable/amd64-usr/9999.2.0/update.payload", b"evil", ["sha256"]
    )
    _forge(sim, evil)
    client = sim.client()
    with pytest.raises(MetadataSignatureError, match="not signed by the keys root names"):
        client.refresh()


def test_recovery_after_online_key_compromise(sim: RepoSim, tmp_path: Path) -> None:
    """A stolen timestamp key can push a huge timestamp version (fast-forward); after the
    owners rotate the timestamp key, nodes accept the legitimate, lower versions again."""
    sim.release("4799.2.0")
    ring = sim.keyring("timestamp")
    (signer,) = ring.signers.values()
    pretty = JSONSerializer(compact=False)
    forged = sim.repo.timestamp()
    forged.signed.version = 1000
    forged.signatures.clear()
    forged.sign(signer)
    sim.overrides["metadata/timestamp.json"] = forged.to_bytes(pretty)
    client = sim.client()
    assert client.refresh().timestamp_version == 1000
    sim.overrides.clear()
    with pytest.raises(MetadataRollbackError):
        sim.client().refresh()  # the legitimate v3 looks like a rollback now
    # Recovery: root v2 replaces the timestamp key; the repository publishes under it.
    old_id = sim.repo.root().signed.roles["timestamp"].keyids[0]
    new_key = generate_key(sim.base / "new-keys", "timestamp-2")
    sim.repo.stage_root(
        RootChange(
            add={"timestamp": [load_public_key(new_key.public_path)]},
            remove={"timestamp": [old_id]},
        )
    )
    keys = Keyring.load([sim.keys, new_key.private_path])
    sim.repo.publish(keys, now=sim.now)
    state = sim.client().refresh()
    assert state.root_version == 2
    assert state.timestamp_version < 1000
    assert sim.client().find_payload("4799.2.0").version == "4799.2.0"


def _rotate_root_key(sim: RepoSim, step: int) -> None:
    """Replace the single root key: root N+1 is signed by the old and the new key."""
    root = sim.repo.root().signed
    new = generate_key(sim.keys, f"root-rotated-{step}")
    sim.repo.stage_root(
        RootChange(
            add={"root": [load_public_key(new.public_path)]},
            remove={"root": list(root.roles["root"].keyids)},
        )
    )
    sim.repo.publish(Keyring.load([sim.keys]), now=sim.now)


def test_far_behind_client_walks_the_root_chain(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    for step in range(3):
        _rotate_root_key(sim, step)
    sim.release("4800.2.0")
    assert sim.repo.root_versions() == [1, 2, 3, 4]
    client = sim.client()  # ships root v1: its key signs nothing current any more
    state = client.refresh()
    assert state.root_version == 4
    assert client.find_payload("4800.2.0").version == "4800.2.0"
    assert (sim.base / "node" / "root_history" / "4.root.json").is_file()


def test_a_root_not_signed_by_its_predecessor_breaks_the_chain(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    _rotate_root_key(sim, 0)
    forged = Metadata.from_bytes(sim.metadata("2.root.json"))
    old_root_ids = Metadata.from_bytes(sim.metadata("1.root.json")).signed.roles["root"].keyids
    for keyid in old_root_ids:
        forged.signatures.pop(keyid, None)  # signed by the new key only
    sim.overrides["metadata/2.root.json"] = forged.to_bytes()
    with pytest.raises(MetadataSignatureError):
        sim.client().refresh()


def test_expired_shipped_root_recovers_once_root_is_rotated(sim: RepoSim) -> None:
    # The node's shipped root expired: the repository did not rotate in time.
    sim.advance(-400 * 86400)
    sim.repo.stage_root(RootChange())  # version 2, but expiring before today
    sim.repo.publish(Keyring.load([sim.keys]), now=sim.now)
    sim.advance(400 * 86400)
    with pytest.raises(MetadataExpiredError):
        sim.client().refresh()
    sim.repo.stage_root(RootChange(), now=sim.now)  # root v3, fresh
    sim.repo.publish(Keyring.load([sim.keys]), now=sim.now)
    assert sim.client().refresh().root_version == 3


def test_endless_metadata_is_cut_off(sim: RepoSim) -> None:
    sim.release("4799.2.0")
    sim.overrides["metadata/timestamp.json"] = ENDLESS
    started = time.monotonic()
    with pytest.raises(MetadataTooLargeError, match="more data than allowed"):
        sim.client().refresh()
    assert time.monotonic() - started < 10


def test_endless_root_and_payload_are_cut_off(sim: RepoSim, tmp_path: Path) -> None:
    name = sim.release("4799.2.0")
    client = sim.client()
    client.refresh()
    sim.overrides[name] = ENDLESS
    with pytest.raises(TargetMismatchError, match="more data than allowed"):
        client.download_target(name, tmp_path / "dl", RUNNING)
    assert not (tmp_path / "dl" / "update.payload").exists()
    sim.overrides["metadata/2.root.json"] = ENDLESS
    with pytest.raises(MetadataTooLargeError):
        sim.client("other-node").refresh()
