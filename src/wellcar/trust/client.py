"""The node's side of TUF: refresh signed metadata, then admit a payload or refuse it.

Runs on the node with Debian's python3, vendored python-tuf + securesystemslib, httpx
and the standard library only — no pydantic, typer, rich or server code.

    verifier = TrustedUpdateVerifier(
        Path("/var/lib/wellcar/trust"),            # writable cache, survives reboots
        Path("/usr/share/wellcar/trust/root.json"),  # the root shipped in the image
        "https://updates.example.com/release",       # release tree (metadata/ below it)
        board="amd64-usr",
    )
    verifier.refresh()                                # before every install
    target = verifier.find_payload("4799.2.0")        # what the release keys signed
    ... download at most target.length bytes to path ...
    verifier.verify_payload(target.name, path, running_version="4790.2.1")

The client workflow (root chain, timestamp, snapshot, targets; rollback, freeze, mix-and-
match and fast-forward checks) is python-tuf's ``ngclient``; this module adds what is
Wellcar's policy: a payload must be a signed target for this board, of a version not
older than the running one, matching its signed length and hashes, judged under
metadata that has not expired at the moment of the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Snapshot, TargetFile, Targets, Timestamp
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from wellcar.trust.channels import NodeChannel, choose_channel
from wellcar.trust.errors import (
    MetadataExpiredError,
    MetadataInconsistentError,
    MetadataRefreshError,
    MetadataRollbackError,
    MetadataSignatureError,
    MetadataTooLargeError,
    MetadataUnavailableError,
    TargetBoardError,
    TargetChannelError,
    TargetDowngradeError,
    TargetMismatchError,
    TrustError,
    UnknownTargetError,
)
from wellcar.trust.fetcher import HttpxFetcher

PAYLOAD_NAME = "update.payload"
METADATA_PATH = "metadata/"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_key(text: str) -> tuple[int, int, int] | None:
    """MAJOR.MINOR.PATCH as a sortable triple (the order of wellcar.image.version, whose
    package the node does not carry)."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class MetadataLimits:
    """Byte caps per metadata file (endless-data attack) and the root-chain walk cap."""

    root_bytes: int = 512_000
    timestamp_bytes: int = 16_384
    snapshot_bytes: int = 2_000_000
    targets_bytes: int = 5_000_000
    max_root_rotations: int = 256

    def config(self) -> UpdaterConfig:
        return UpdaterConfig(
            max_root_rotations=self.max_root_rotations,
            root_max_length=self.root_bytes,
            timestamp_max_length=self.timestamp_bytes,
            snapshot_max_length=self.snapshot_bytes,
            targets_max_length=self.targets_bytes,
            # Target paths carry the version and version directories never change, so
            # they are fetched by path (consistent snapshots still apply to metadata).
            prefix_targets_with_hash=False,
            app_user_agent="wellcar-agent",
        )


@dataclass(frozen=True)
class VerifiedTarget:
    """A target as the release keys signed it."""

    name: str  # path in the release tree, e.g. stable/amd64-usr/4799.2.0/update.payload
    length: int
    hashes: Mapping[str, str]
    version: str
    channel: str
    board: str
    custom: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.hashes.get("sha256", "")


@dataclass(frozen=True)
class TrustState:
    """What the last refresh established (versions and expiry, for status reports)."""

    refreshed_at: datetime
    root_version: int
    timestamp_version: int
    snapshot_version: int
    targets_version: int
    expires: datetime  # the earliest expiry: after it, a refresh is needed again


def _target(name: str, info: TargetFile) -> VerifiedTarget:
    custom = info.custom if isinstance(info.custom, dict) else {}
    return VerifiedTarget(
        name=name,
        length=info.length,
        hashes=dict(info.hashes),
        version=str(custom.get("version", "")),
        channel=str(custom.get("channel", "")),
        board=str(custom.get("board", "")),
        custom=dict(custom),
    )


@contextmanager
def _tuf_errors(what: str) -> Iterator[None]:
    """python-tuf's exceptions as Wellcar's, each with what to do about it."""
    try:
        yield
    except TrustError:
        raise
    except tuf_errors.DownloadLengthMismatchError as exc:
        raise MetadataTooLargeError(
            f"{what}: the mirror sent more data than allowed ({exc}); it is faulty or "
            "malicious — nothing was installed"
        ) from exc
    except tuf_errors.DownloadError as exc:
        raise MetadataUnavailableError(
            f"{what}: {exc}; check the mirror URL and network, then retry"
        ) from exc
    except tuf_errors.ExpiredMetadataError as exc:
        raise MetadataExpiredError(
            f"{what}: {exc}; the mirror serves stale metadata (freeze attack, or the "
            "repository's online signing stopped) — nothing was installed"
        ) from exc
    except tuf_errors.BadVersionNumberError as exc:
        raise MetadataRollbackError(
            f"{what}: {exc}; the mirror serves metadata older than this node already "
            "trusts (rollback or mix-and-match) — nothing was installed"
        ) from exc
    except tuf_errors.UnsignedMetadataError as exc:
        raise MetadataSignatureError(
            f"{what}: {exc}; metadata not signed by the keys root names — nothing was installed"
        ) from exc
    except tuf_errors.RepositoryError as exc:
        raise MetadataInconsistentError(
            f"{what}: {exc}; the repository is inconsistent or tampered — nothing was installed"
        ) from exc
    except OSError as exc:
        raise MetadataRefreshError(
            f"{what}: cannot use the metadata cache: {exc.strerror or exc}"
        ) from exc


class TrustedUpdateVerifier:
    """One node's view of the release repository; create one per update check."""

    def __init__(
        self,
        metadata_dir: Path,
        trusted_root: Path,
        mirror_url: str,
        *,
        board: str | None = None,
        fetcher: FetcherInterface | None = None,
        limits: MetadataLimits | None = None,
    ) -> None:
        self.metadata_dir = metadata_dir
        self.trusted_root = trusted_root
        self.mirror_url = mirror_url.rstrip("/") + "/"
        self.board = board
        self._fetcher = fetcher or HttpxFetcher()
        self._limits = limits or MetadataLimits()
        self._targets: Metadata[Targets] | None = None
        self._updater: Updater | None = None
        self.state: TrustState | None = None

    # ---------------------------------------------------------------- refresh

    def refresh(self) -> TrustState:
        """Fetch and verify root (walking rotations), timestamp, snapshot and targets.

        Call before every install. Raises a MetadataRefreshError subclass; then install
        nothing and retry at the next check."""
        try:
            bootstrap = self.trusted_root.read_bytes()
        except OSError as exc:
            raise MetadataRefreshError(
                f"cannot read the trusted root {self.trusted_root}: {exc.strerror}; the image "
                "ships it, reinstall or repair /usr"
            ) from None
        now = datetime.now(UTC)
        with _tuf_errors("metadata refresh"):
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            # A fresh Updater per refresh: python-tuf refreshes an instance only once. The
            # shipped root is the anchor every time; newer roots come from the cache
            # (root_history/) or the mirror, each verified against its predecessor.
            updater = Updater(
                metadata_dir=str(self.metadata_dir),
                metadata_base_url=self.mirror_url + METADATA_PATH,
                target_dir=None,
                target_base_url=self.mirror_url,
                fetcher=self._fetcher,
                config=self._limits.config(),
                bootstrap=bootstrap,
            )
            updater.refresh()
            # ngclient persisted exactly the metadata it just verified.
            timestamp = cast(Metadata[Timestamp], self._load("timestamp"))
            snapshot = cast(Metadata[Snapshot], self._load("snapshot"))
            targets = cast(Metadata[Targets], self._load("targets"))
            root = self._load("root")
        self._updater = updater
        self._targets = targets
        self.state = TrustState(
            refreshed_at=now,
            root_version=root.signed.version,
            timestamp_version=timestamp.signed.version,
            snapshot_version=snapshot.signed.version,
            targets_version=targets.signed.version,
            expires=min(md.signed.expires for md in (root, timestamp, snapshot, targets)),
        )
        return self.state

    def _load(self, role: str) -> Metadata[Any]:
        return Metadata.from_bytes((self.metadata_dir / f"{role}.json").read_bytes())

    def _fresh_targets(self) -> Metadata[Targets]:
        """Targets metadata that is valid now: refreshed if never done or expired since
        (a long download must not be judged under metadata that went stale meanwhile)."""
        if self._targets is None or self.state is None or self.state.expires <= datetime.now(UTC):
            self.refresh()
        assert self._targets is not None
        return self._targets

    # --------------------------------------------------------------- targets

    def target(self, name: str) -> VerifiedTarget:
        """The signed description of target ``name``; UnknownTargetError if unsigned."""
        targets = self._fresh_targets()
        info = targets.signed.targets.get(name)
        if info is None and self._updater is not None:
            with _tuf_errors(f"target {name}"):
                info = self._updater.get_targetinfo(name)  # delegated roles, if any
        if info is None:
            raise UnknownTargetError(
                f"{name} is not a target signed by the release keys; refusing to install it"
            )
        return _target(name, info)

    def targets(self) -> list[VerifiedTarget]:
        return [_target(n, i) for n, i in sorted(self._fresh_targets().signed.targets.items())]

    def find_payload(self, version: str, board: str | None = None) -> VerifiedTarget:
        """The signed update payload of ``version`` for the board (versions are unique
        across channels, so the version names one release)."""
        board = board or self.board
        for target in self.targets():
            if (
                target.name.rsplit("/", 1)[-1] == PAYLOAD_NAME
                and target.version == version
                and (board is None or target.board == board)
            ):
                return target
        for_board = f" for board {board}" if board else ""
        raise UnknownTargetError(
            f"no signed update payload of version {version}{for_board}: the release is not "
            "published (or not signed yet); refusing to install it"
        )

    def node_channel(
        self, configured: str | None, group: str, running_version: str
    ) -> NodeChannel | None:
        """The channel this node follows under the signed metadata (see
        wellcar.trust.channels.choose_channel); None when nothing says."""
        payloads = [
            t
            for t in self.targets()
            if t.name.rsplit("/", 1)[-1] == PAYLOAD_NAME
            and (self.board is None or t.board == self.board)
        ]
        running = next((t.channel for t in payloads if t.version == running_version), None)
        known = frozenset(t.channel for t in payloads if t.channel)
        return choose_channel(configured, group, running or None, known)

    def admit(
        self, target: VerifiedTarget, running_version: str, channel: NodeChannel | None = None
    ) -> None:
        """Refuse a target for another board or channel, or older than the running version."""
        if channel is not None and target.channel != channel.name:
            raise TargetChannelError(
                f"{target.name} is signed for channel {target.channel or '(none)'}, this node "
                f"follows {channel.describe()}; refusing to install it (to switch, set "
                f"CHANNEL={target.channel or '<name>'} in update.conf)"
            )
        if self.board is not None and target.board != self.board:
            raise TargetBoardError(
                f"{target.name} is signed for board {target.board or '(none)'}, this node is "
                f"{self.board}; refusing to install it"
            )
        offered, running = version_key(target.version), version_key(running_version)
        if offered is None:
            raise UnknownTargetError(
                f"{target.name} carries no valid signed version ({target.version!r}); refusing"
            )
        if running is not None and offered < running:
            raise TargetDowngradeError(
                f"{target.name} is version {target.version}, older than the running "
                f"{running_version}; refusing to go back (rollback attack or stale server)"
            )

    def verify_payload(
        self,
        target_name: str,
        path: Path,
        running_version: str,
        channel: NodeChannel | None = None,
    ) -> VerifiedTarget:
        """Admit a downloaded file for installation, or raise TargetRejectedError.

        Checks, under metadata valid now: ``target_name`` is signed, for this board,
        not older than ``running_version``, and ``path`` has its exact length and hashes."""
        target = self.target(target_name)
        self.admit(target, running_version, channel)
        targets = self._fresh_targets()
        info = targets.signed.targets.get(target_name)
        if info is None:  # vanished in a refresh in between: a newer state says no
            raise UnknownTargetError(f"{target_name} is no longer a signed target; refusing")
        try:
            with path.open("rb") as data:
                info.verify_length_and_hashes(data)
        except OSError as exc:
            raise TargetMismatchError(f"cannot read {path}: {exc.strerror}") from None
        except tuf_errors.LengthOrHashMismatchError as exc:
            raise TargetMismatchError(
                f"{path} is not the signed {target_name} ({exc}); it is corrupt or tampered — "
                "delete it and download again"
            ) from None
        return target

    def download_target(
        self, target_name: str, directory: Path, running_version: str
    ) -> tuple[Path, VerifiedTarget]:
        """Download a target (at most its signed length) into ``directory`` and verify it."""
        target = self.target(target_name)
        self.admit(target, running_version)
        assert self._updater is not None and self._targets is not None
        info = self._targets.signed.targets[target_name]
        directory.mkdir(parents=True, exist_ok=True)
        dest = directory / target_name.rsplit("/", 1)[-1]
        try:
            with _tuf_errors(f"download of {target_name}"):
                path = self._updater.download_target(info, str(dest))
        except MetadataTooLargeError as exc:
            raise TargetMismatchError(str(exc)) from None
        except MetadataInconsistentError as exc:
            raise TargetMismatchError(
                f"{target_name} from the mirror does not match its signed length and hashes "
                f"({exc.__cause__}); nothing was installed"
            ) from None
        return Path(path), target
