"""The TUF repository of a release tree: ``<tree>/metadata/`` plus a staging area.

Published files use consistent snapshots, so a mirror can copy the tree while it changes:

    metadata/1.root.json 2.root.json ...   every root version, forever (far-behind nodes
                                           walk this chain)
    metadata/root.json                     the newest root, to ship in images
    metadata/N.targets.json                targets: every artifact's length, sha256, custom
    metadata/N.snapshot.json               which targets version is current
    metadata/timestamp.json                which snapshot is current; written last

Changes are *staged* first (``.trust-staged/<role>.json``), signed with whatever keys are
at hand, and published only when every staged role meets its threshold — root rotation
and the targets re-signing it may need go out together or not at all. Snapshot and
timestamp are then re-signed with the online keys.

Target names are paths in the release tree (``stable/amd64-usr/4799.2.0/update.payload``):
versions are unique and version directories immutable, so clients fetch targets by path,
without hash prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from securesystemslib.signer import Key
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import CanonicalJSONSerializer, JSONSerializer

from wellcar.atomic_file import write_file_atomically
from wellcar.trust.errors import (
    RootExpiredError,
    SigningKeyError,
    TrustRepositoryError,
)
from wellcar.trust.keys import GeneratedKey, Keyring, generate_key
from wellcar.trust.policy import POLICY_FILE, ExpiryPolicy

METADATA_DIR = "metadata"
STAGED_DIR = ".trust-staged"
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
OFFLINE_ROLES = ("root", "targets")
HASH_ALGORITHMS = ["sha256"]

_PRETTY = JSONSerializer(compact=False)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, data, mode=0o644)


def signed_bytes(md: Metadata[Any]) -> bytes:
    """The canonical bytes signatures cover: two files with equal bytes say the same."""
    return CanonicalJSONSerializer().serialize(md.signed)


def load_metadata(path: Path) -> Metadata[Any]:
    try:
        return Metadata.from_bytes(path.read_bytes())
    except OSError as exc:
        raise TrustRepositoryError(f"cannot read {path}: {exc.strerror}") from None
    except DeserializationError as exc:
        raise TrustRepositoryError(f"{path} is not TUF metadata: {exc}") from None


def role_of(md: Metadata[Any]) -> str:
    return str(md.signed.type)


def missing_signatures(delegator: Root, role: str, md: Metadata[Any]) -> int:
    """How many more valid signatures ``md`` needs under ``delegator`` (0 = enough)."""
    result = delegator.get_verification_result(role, signed_bytes(md), md.signatures)
    return max(0, result.threshold - len(result.signed))


@dataclass(frozen=True)
class TargetEntry:
    """A file to publish as a target: its name in the tree, where it is, custom fields."""

    name: str
    path: Path
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishResult:
    published: tuple[str, ...]  # e.g. ("root v2", "targets v5", "snapshot v7", ...)
    staged: tuple[str, ...]  # roles left staged, waiting for offline signatures


@dataclass(frozen=True)
class RootChange:
    """A root rotation: keys to add or remove per role, new thresholds."""

    add: dict[str, list[Key]] = field(default_factory=dict)
    remove: dict[str, list[str]] = field(default_factory=dict)  # role -> key ids
    thresholds: dict[str, int] = field(default_factory=dict)


class TrustRepository:
    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.metadata_dir = tree / METADATA_DIR
        self.staged_dir = tree / STAGED_DIR
        if not (self.metadata_dir / "1.root.json").is_file():
            raise TrustRepositoryError(
                f"{tree} has no TUF repository (no {METADATA_DIR}/1.root.json); create one "
                "with `wellcar trust init`"
            )
        self.policy = ExpiryPolicy.load(tree / POLICY_FILE)

    # ---------------------------------------------------------------- creation

    @classmethod
    def initialize(
        cls,
        tree: Path,
        keys_dir: Path,
        *,
        root_keys: int = 1,
        root_threshold: int = 1,
        targets_keys: int = 1,
        targets_threshold: int = 1,
        policy: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> tuple[TrustRepository, list[GeneratedKey]]:
        """Generate keys into ``keys_dir`` and publish version 1 of every role."""
        if (tree / METADATA_DIR / "1.root.json").exists():
            raise TrustRepositoryError(f"{tree} already has a TUF repository")
        for count, threshold, role in (
            (root_keys, root_threshold, "root"),
            (targets_keys, targets_threshold, "targets"),
        ):
            if not 1 <= threshold <= count:
                raise TrustRepositoryError(
                    f"{role} threshold {threshold} must be between 1 and its {count} keys"
                )
        policy = policy or ExpiryPolicy()
        policy.check()
        now = now or _now()
        generated: list[GeneratedKey] = []
        root = Root(expires=now + policy.lifetime("root"), consistent_snapshot=True)
        names = [f"root-{i}" for i in range(1, root_keys + 1)]
        names += [f"targets-{i}" for i in range(1, targets_keys + 1)]
        names += ["snapshot", "timestamp"]
        keyring = Keyring()
        for name in names:
            key = generate_key(keys_dir, name)
            generated.append(key)
            loaded = Keyring.load([key.private_path])
            keyring.signers.update(loaded.signers)
            keyring.sources.update(loaded.sources)
            root.add_key(keyring.signers[key.keyid].public_key, name.split("-")[0])
        root.roles["root"].threshold = root_threshold
        root.roles["targets"].threshold = targets_threshold
        tree.mkdir(parents=True, exist_ok=True)
        policy.save(tree / POLICY_FILE)
        metadata_dir = tree / METADATA_DIR
        root_md = Metadata(root)
        for signer in keyring.for_keyids(root.roles["root"].keyids):
            root_md.sign(signer, append=True)
        _write_atomic(metadata_dir / "1.root.json", root_md.to_bytes(_PRETTY))
        _write_atomic(metadata_dir / "root.json", root_md.to_bytes(_PRETTY))
        targets_md = Metadata(Targets(expires=now + policy.lifetime("targets")))
        for signer in keyring.for_keyids(root.roles["targets"].keyids):
            targets_md.sign(signer, append=True)
        _write_atomic(metadata_dir / "1.targets.json", targets_md.to_bytes(_PRETTY))
        repo = cls(tree)
        repo._publish_online(keyring, now, targets_version=1)
        return repo, generated

    # ----------------------------------------------------------------- reading

    def root_versions(self) -> list[int]:
        versions = []
        for path in self.metadata_dir.glob("*.root.json"):
            head = path.name.split(".", 1)[0]
            if head.isdigit():
                versions.append(int(head))
        return sorted(versions)

    def root(self) -> Metadata[Root]:
        latest = self.root_versions()[-1]
        return cast(Metadata[Root], load_metadata(self.metadata_dir / f"{latest}.root.json"))

    def timestamp(self) -> Metadata[Timestamp]:
        return cast(Metadata[Timestamp], load_metadata(self.metadata_dir / "timestamp.json"))

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return cast(
            Metadata[Snapshot], load_metadata(self.metadata_dir / f"{version}.snapshot.json")
        )

    def targets(self) -> Metadata[Targets]:
        version = self.snapshot().signed.meta["targets.json"].version
        return cast(Metadata[Targets], load_metadata(self.metadata_dir / f"{version}.targets.json"))

    def staged(self, role: str) -> Metadata[Any] | None:
        path = self.staged_dir / f"{role}.json"
        return load_metadata(path) if path.exists() else None

    def staged_roles(self) -> list[str]:
        return [role for role in OFFLINE_ROLES if (self.staged_dir / f"{role}.json").exists()]

    def check_root_fresh(self, now: datetime | None = None) -> None:
        root = self.root().signed
        if root.is_expired(now or _now()):
            raise RootExpiredError(
                f"root v{root.version} expired on {root.expires:%Y-%m-%d %H:%M} UTC: rotate it "
                "with the offline root keys (`wellcar trust rotate-root`) before publishing"
            )

    def check_ready(self, keyring: Keyring, now: datetime | None = None) -> None:
        """Fail before anything is written unless a targets change can be published now:
        root is fresh, nothing else is staged, and the keys meet every threshold."""
        self.check_root_fresh(now)
        waiting = self.staged_roles()
        if waiting:
            raise TrustRepositoryError(
                f"staged {' and '.join(waiting)} metadata is waiting for signatures; finish "
                "it (`wellcar trust import`, `wellcar trust publish`) or drop it "
                "(`wellcar trust discard`) first"
            )
        root = self.root().signed
        for role in ("targets", "snapshot", "timestamp"):
            keyring.require(role, root.roles[role].keyids, root.roles[role].threshold)

    # ----------------------------------------------------------------- staging

    def stage_targets(
        self,
        add: Iterable[TargetEntry] = (),
        remove: Iterable[str] = (),
        now: datetime | None = None,
    ) -> Metadata[Targets]:
        """Stage a new targets version with files added/removed (unsigned; re-staging
        replaces signatures because the signed content changes)."""
        now = now or _now()
        current = self.staged("targets") or self.targets()
        published = self.targets().signed
        targets = cast(Targets, current.signed)
        for name in remove:
            targets.targets.pop(name, None)
        for entry in add:
            if not entry.path.is_file():
                raise TrustRepositoryError(f"target file {entry.path} does not exist")
            info = TargetFile.from_file(entry.name, str(entry.path), HASH_ALGORITHMS)
            info.unrecognized_fields["custom"] = dict(entry.custom)
            targets.targets[entry.name] = info
        targets.version = published.version + 1
        targets.expires = now + self.policy.lifetime("targets")
        md = Metadata(targets)
        self._stage(md)
        return md

    def stage_root(self, change: RootChange, now: datetime | None = None) -> Metadata[Root]:
        now = now or _now()
        current = self.root()
        staged = self.staged("root")
        base = cast(Root, (staged or current).signed)
        for role, keyids in change.remove.items():
            for keyid in keyids:
                if keyid not in base.roles[role].keyids:
                    raise TrustRepositoryError(f"key {keyid[:12]} is not a {role} key")
                base.revoke_key(keyid, role)
        for role, keys in change.add.items():
            for key in keys:
                base.add_key(key, role)
        for role, threshold in change.thresholds.items():
            base.roles[role].threshold = threshold
        for role in TOP_ROLES:
            count = len(base.roles[role].keyids)
            if not 1 <= base.roles[role].threshold <= count:
                raise TrustRepositoryError(
                    f"{role} would have threshold {base.roles[role].threshold} with {count} "
                    "keys; a role needs at least as many keys as its threshold"
                )
        base.version = current.signed.version + 1
        base.expires = now + self.policy.lifetime("root")
        md = Metadata(base)
        self._stage(md)
        return md

    def _stage(self, md: Metadata[Any]) -> None:
        _write_atomic(self.staged_dir / f"{role_of(md)}.json", md.to_bytes(_PRETTY))

    def discard_staged(self, role: str) -> None:
        (self.staged_dir / f"{role}.json").unlink(missing_ok=True)

    def _delegator(self, role: str) -> Root:
        """The root that must authorize a staged role: the staged root when rotating."""
        staged_root = self.staged("root")
        return cast(Root, (staged_root or self.root()).signed)

    def _authorized(self, role: str) -> list[str]:
        keyids = list(self._delegator(role).roles[role].keyids)
        if role == "root":  # N+1 must be signed by the old root keys too
            keyids += [k for k in self.root().signed.roles["root"].keyids if k not in keyids]
        return keyids

    def sign_staged(self, keyring: Keyring, roles: Iterable[str] | None = None) -> list[str]:
        """Add a signature from every key in ``keyring`` the staged roles accept."""
        done = []
        for role in roles or self.staged_roles():
            md = self.staged(role)
            if md is None:
                continue
            have = {sig for sig in md.signatures}
            for signer in keyring.for_keyids(self._authorized(role)):
                if signer.public_key.keyid not in have:
                    md.sign(signer, append=True)
                    done.append(f"{role}:{signer.public_key.keyid[:12]}")
            self._stage(md)
        return done

    def import_signatures(self, signed_file: Path) -> list[str]:
        """Merge signatures made offline into the staged file with the same content."""
        incoming = load_metadata(signed_file)
        role = role_of(incoming)
        staged = self.staged(role)
        if staged is None:
            raise TrustRepositoryError(f"no staged {role} metadata to add signatures to")
        if signed_bytes(incoming) != signed_bytes(staged):
            raise TrustRepositoryError(
                f"{signed_file} is not the staged {role} v{staged.signed.version} (its content "
                "differs); export it again with `wellcar trust export` and sign that"
            )
        authorized = self._authorized(role)
        keys = self._delegator(role).keys | self.root().signed.keys
        added = []
        for keyid, signature in incoming.signatures.items():
            if keyid not in authorized:
                raise SigningKeyError(
                    f"{signed_file}: signature by key {keyid[:12]}, which is not a {role} key "
                    "of this repository (wrong key)"
                )
            try:
                keys[keyid].verify_signature(signature, signed_bytes(staged))
            except Exception:
                raise SigningKeyError(
                    f"{signed_file}: the signature by key {keyid[:12]} does not verify"
                ) from None
            if keyid not in staged.signatures:
                staged.signatures[keyid] = signature
                added.append(keyid[:12])
        self._stage(staged)
        return added

    # -------------------------------------------------------------- publishing

    def publish(self, keyring: Keyring, now: datetime | None = None) -> PublishResult:
        """Publish staged roles that meet their thresholds, then snapshot + timestamp.

        All or nothing: if a staged role lacks signatures nothing is written and the
        error says how many are missing."""
        now = now or _now()
        self.sign_staged(keyring)
        staged_root = self.staged("root")
        if staged_root is None:
            self.check_root_fresh(now)
        current_root = self.root().signed
        new_root = cast(Root, staged_root.signed) if staged_root else current_root
        staged_targets = self.staged("targets")
        if staged_root is not None and staged_targets is None:
            old_ids = set(current_root.roles["targets"].keyids)
            if set(new_root.roles["targets"].keyids) != old_ids:
                # New targets keys: the current targets must be re-signed with them.
                staged_targets = self.stage_targets(now=now)
                self.sign_staged(keyring, ["targets"])
                staged_targets = self.staged("targets")
        problems = []
        if staged_root is not None:
            for who, delegator in (("old", current_root), ("new", new_root)):
                missing = missing_signatures(delegator, "root", staged_root)
                if missing:
                    problems.append(
                        f"root v{new_root.version} needs {missing} more signature(s) by "
                        f"{who} root keys"
                    )
        if staged_targets is not None:
            missing = missing_signatures(new_root, "targets", staged_targets)
            if missing:
                problems.append(
                    f"targets v{staged_targets.signed.version} needs {missing} more "
                    "targets key signature(s)"
                )
        if problems:
            raise SigningKeyError(
                "; ".join(problems) + ": sign with --keys, or offline (`wellcar trust export`, "
                "`wellcar trust sign`, `wellcar trust import`); nothing was published"
            )
        # Online keys must be at hand before anything is written.
        for role in ("snapshot", "timestamp"):
            keyring.require(role, new_root.roles[role].keyids, new_root.roles[role].threshold)
        published = []
        if staged_root is not None:
            data = staged_root.to_bytes(_PRETTY)
            _write_atomic(self.metadata_dir / f"{new_root.version}.root.json", data)
            _write_atomic(self.metadata_dir / "root.json", data)
            published.append(f"root v{new_root.version}")
        targets_version = self.targets().signed.version
        if staged_targets is not None:
            targets_version = staged_targets.signed.version
            _write_atomic(
                self.metadata_dir / f"{targets_version}.targets.json",
                staged_targets.to_bytes(_PRETTY),
            )
            published.append(f"targets v{targets_version}")
        published += self._publish_online(keyring, now, targets_version)
        for role in ("root", "targets"):
            self.discard_staged(role)
        return PublishResult(tuple(published), ())

    def refresh_online(self, keyring: Keyring, now: datetime | None = None) -> PublishResult:
        """Re-sign timestamp (and snapshot): the job an online machine runs every few hours."""
        now = now or _now()
        self.check_root_fresh(now)
        published = self._publish_online(keyring, now, self.targets().signed.version)
        return PublishResult(tuple(published), tuple(self.staged_roles()))

    def _publish_online(self, keyring: Keyring, now: datetime, targets_version: int) -> list[str]:
        root = self.root().signed
        signers = {
            role: keyring.require(role, root.roles[role].keyids, root.roles[role].threshold)
            for role in ("snapshot", "timestamp")
        }
        previous_ts: Timestamp | None = None
        previous_snapshot: Snapshot | None = None
        if (self.metadata_dir / "timestamp.json").exists():
            previous_ts = self.timestamp().signed
            previous_snapshot = self.snapshot().signed
        snapshot = Snapshot(
            version=previous_snapshot.version + 1 if previous_snapshot else 1,
            expires=now + self.policy.lifetime("snapshot"),
            meta={"targets.json": MetaFile(version=targets_version)},
        )
        snapshot_md = Metadata(snapshot)
        for signer in signers["snapshot"]:
            snapshot_md.sign(signer, append=True)
        snapshot_bytes = snapshot_md.to_bytes(_PRETTY)
        _write_atomic(self.metadata_dir / f"{snapshot.version}.snapshot.json", snapshot_bytes)
        timestamp = Timestamp(
            version=previous_ts.version + 1 if previous_ts else 1,
            expires=now + self.policy.lifetime("timestamp"),
            snapshot_meta=MetaFile.from_data(snapshot.version, snapshot_bytes, HASH_ALGORITHMS),
        )
        # The snapshot's MetaFile.from_data fills length and hashes: a node then refuses a
        # snapshot that is not byte-for-byte the one this timestamp names (mix-and-match).
        timestamp_md = Metadata(timestamp)
        for signer in signers["timestamp"]:
            timestamp_md.sign(signer, append=True)
        _write_atomic(self.metadata_dir / "timestamp.json", timestamp_md.to_bytes(_PRETTY))
        return [f"snapshot v{snapshot.version}", f"timestamp v{timestamp.version}"]


def verify_published(tree: Path) -> Metadata[Targets]:
    """Check the published chain the way a fresh node would (signatures, thresholds);
    return the verified targets. Used before telling the update server about a release."""
    repo = TrustRepository(tree)
    versions = repo.root_versions()
    trusted = cast(Metadata[Root], load_metadata(repo.metadata_dir / "1.root.json"))
    try:
        for version in versions[1:]:
            md = cast(Metadata[Root], load_metadata(repo.metadata_dir / f"{version}.root.json"))
            trusted.verify_delegate("root", md)
            md.verify_delegate("root", md)
            trusted = md
        online: list[tuple[str, Metadata[Any]]] = [
            ("timestamp", repo.timestamp()),
            ("snapshot", repo.snapshot()),
            ("targets", repo.targets()),
        ]
        for role, role_md in online:
            trusted.verify_delegate(role, role_md)
    except UnsignedMetadataError as exc:
        raise TrustRepositoryError(f"published metadata does not verify: {exc}") from None
    return repo.targets()


def sign_file(path: Path, keyring: Keyring) -> list[str]:
    """Offline signing: add a signature by every key in ``keyring`` to an exported file.

    Runs on the offline machine, without the repository; whether each key may sign the
    role is checked on import (`import_signatures`), where root is at hand."""
    md = load_metadata(path)
    added = []
    for keyid, signer in keyring.signers.items():
        if keyid in md.signatures:
            continue
        md.sign(signer, append=True)
        added.append(keyid[:12])
    if not added:
        raise SigningKeyError(f"no new signature for {path}: every key given already signed it")
    _write_atomic(path, md.to_bytes(_PRETTY))
    return added
