"""The repository side: keys, thresholds, staging, offline signing, root rotation."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wellcar.trust.errors import (
    KeyFileError,
    RootExpiredError,
    SigningKeyError,
    TrustRepositoryError,
)
from wellcar.trust.keys import Keyring, generate_key, load_public_key, load_signer
from wellcar.trust.repository import (
    RootChange,
    TargetEntry,
    TrustRepository,
    sign_file,
    verify_published,
)

NOW = datetime.now(UTC).replace(microsecond=0)


def _artifact(tree: Path, version: str = "4799.2.0") -> TargetEntry:
    path = tree / "stable" / "amd64-usr" / version / "update.payload"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(version.encode())
    custom = {"version": version, "channel": "stable", "board": "amd64-usr"}
    return TargetEntry(str(path.relative_to(tree)), path, custom)


def test_init_writes_keys_and_version_one(tmp_path: Path) -> None:
    repo, keys = TrustRepository.initialize(
        tmp_path / "tree", tmp_path / "keys", root_keys=3, root_threshold=2, now=NOW
    )
    names = sorted(k.private_path.name for k in keys)
    assert names == ["root-1.key", "root-2.key", "root-3.key", "snapshot.key",
                     "targets-1.key", "timestamp.key"]  # fmt: skip
    assert stat.S_IMODE(keys[0].private_path.stat().st_mode) == 0o600
    root = repo.root().signed
    assert root.roles["root"].threshold == 2 and len(root.roles["root"].keyids) == 3
    assert root.consistent_snapshot
    assert repo.timestamp().signed.expires - NOW == timedelta(days=1)
    assert repo.snapshot().signed.expires - NOW == timedelta(days=7)
    verify_published(repo.tree)
    with pytest.raises(TrustRepositoryError, match="already has"):
        TrustRepository.initialize(tmp_path / "tree", tmp_path / "other-keys")


def test_threshold_must_fit_the_keys(tmp_path: Path) -> None:
    with pytest.raises(TrustRepositoryError, match="between 1 and its 1 keys"):
        TrustRepository.initialize(tmp_path / "t", tmp_path / "k", targets_threshold=2)


def test_publish_without_enough_targets_keys_publishes_nothing(tmp_path: Path) -> None:
    repo, _ = TrustRepository.initialize(
        tmp_path / "tree", tmp_path / "keys", targets_keys=2, targets_threshold=2, now=NOW
    )
    offline = tmp_path / "offline"
    offline.mkdir()
    shutil.move(tmp_path / "keys" / "targets-2.key", offline / "targets-2.key")
    before = repo.timestamp().signed.version
    repo.stage_targets([_artifact(repo.tree)], now=NOW)
    with pytest.raises(SigningKeyError, match="needs 1 more targets key signature"):
        repo.publish(Keyring.load([tmp_path / "keys"]), now=NOW)
    assert repo.timestamp().signed.version == before
    assert repo.targets().signed.targets == {}
    # The offline flow: export, sign elsewhere, import, publish.
    exported = tmp_path / "to-sign.json"
    shutil.copyfile(repo.staged_dir / "targets.json", exported)
    assert sign_file(exported, Keyring.load([offline])) != []
    assert repo.import_signatures(exported) != []
    result = repo.publish(Keyring.load([tmp_path / "keys"]), now=NOW)
    assert result.published[0] == "targets v2"
    assert "stable/amd64-usr/4799.2.0/update.payload" in verify_published(repo.tree).signed.targets


def test_import_refuses_a_wrong_key_and_changed_content(tmp_path: Path) -> None:
    repo, _ = TrustRepository.initialize(tmp_path / "tree", tmp_path / "keys", now=NOW)
    repo.stage_targets([_artifact(repo.tree)], now=NOW)
    exported = tmp_path / "to-sign.json"
    shutil.copyfile(repo.staged_dir / "targets.json", exported)
    stranger = generate_key(tmp_path / "stranger", "mine")
    sign_file(exported, Keyring.load([stranger.private_path]))
    with pytest.raises(SigningKeyError, match="not a targets key of this repository"):
        repo.import_signatures(exported)
    repo.stage_targets([_artifact(repo.tree, "4800.2.0")], now=NOW)
    with pytest.raises(TrustRepositoryError, match="content differs"):
        repo.import_signatures(exported)


def test_wrong_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_signer(bad)
    with pytest.raises(KeyFileError, match="does not exist"):
        Keyring.load([tmp_path / "missing"])


def test_expired_root_blocks_publishing_until_rotated(tmp_path: Path) -> None:
    long_ago = NOW - timedelta(days=400)
    repo, _ = TrustRepository.initialize(tmp_path / "tree", tmp_path / "keys", now=long_ago)
    keys = Keyring.load([tmp_path / "keys"])
    repo.stage_targets([_artifact(repo.tree)], now=NOW)
    with pytest.raises(RootExpiredError, match="rotate it"):
        repo.publish(keys, now=NOW)
    with pytest.raises(RootExpiredError):
        repo.refresh_online(keys, now=NOW)
    repo.stage_root(RootChange(), now=NOW)
    result = repo.publish(keys, now=NOW)
    assert result.published[:2] == ("root v2", "targets v2")


def test_root_rotation_keeps_every_version_and_needs_both_key_sets(tmp_path: Path) -> None:
    repo, keys = TrustRepository.initialize(tmp_path / "tree", tmp_path / "keys", now=NOW)
    old_root = next(k for k in keys if k.private_path.name == "root-1.key")
    new_root = generate_key(tmp_path / "new", "root-2")
    new_targets = generate_key(tmp_path / "new", "targets-2")
    repo.stage_targets([_artifact(repo.tree)], now=NOW)
    repo.publish(Keyring.load([tmp_path / "keys"]), now=NOW)
    change = RootChange(
        add={"root": [load_public_key(new_root.public_path)],
             "targets": [load_public_key(new_targets.public_path)]},
        remove={"root": [old_root.keyid],
                "targets": list(repo.root().signed.roles["targets"].keyids)},
    )  # fmt: skip
    repo.stage_root(change, now=NOW)
    online_and_old = Keyring.load([tmp_path / "keys"])
    with pytest.raises(SigningKeyError, match="new root keys"):
        repo.publish(online_and_old, now=NOW)
    everything = Keyring.load([tmp_path / "keys", tmp_path / "new"])
    result = repo.publish(everything, now=NOW)
    # New targets keys: the targets were re-signed with them in the same publication.
    assert result.published[:2] == ("root v2", "targets v3")
    assert repo.root_versions() == [1, 2]
    targets = verify_published(repo.tree)
    assert "stable/amd64-usr/4799.2.0/update.payload" in targets.signed.targets
    assert (repo.metadata_dir / "root.json").read_bytes() == (
        repo.metadata_dir / "2.root.json"
    ).read_bytes()


def test_the_node_client_imports_nothing_heavy() -> None:
    # (rich is not checked: httpx imports it for its own CLI when it happens to be installed)
    import subprocess
    import sys

    code = (
        "import sys, wellcar.trust.client; "
        "bad = [m for m in ('pydantic', 'typer', 'wellcar.server', 'wellcar.cli', "
        "'wellcar.trust.repository', 'wellcar.image') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
