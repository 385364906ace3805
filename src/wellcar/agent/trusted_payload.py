"""TUF between an Omaha offer and the install: only payloads the release keys signed.

Omaha says what to install and where to fetch it; it does not say whether that is a
release at all, nor stop a compromised server or mirror from offering an older signed
release or replaying stale answers. When the image ships a TUF root (``TRUST_ROOT``),
the agent therefore admits an offer only through :class:`TrustGate`:

1. :meth:`TrustGate.admit_offer`, before anything is downloaded: refresh the metadata
   from ``RELEASE_REPOSITORY`` (root chain, timestamp, snapshot, targets, all under the
   shipped root), find the signed payload of the offered version for this board, refuse a
   downgrade, and refuse an offer whose size or SHA-256 differ from the signed ones (the
   download would be refused anyway);
2. :meth:`TrustGate.verify_download`, after the download and before a byte reaches the
   slot: the file must be that target, with its signed length and hashes, under metadata
   that has not expired (the verifier refreshes again if it expired during the download).

Without a shipped root the gate is off and the agent behaves as before (payload
signature and Omaha hash only); it says so once when it starts. With a root but no
``RELEASE_REPOSITORY`` every offer is refused: the node never installs unverified.

``wellcar.trust.client`` (python-tuf, securesystemslib) is imported only when the gate is
on and an offer arrives, so an agent without a root does not carry it in memory
(``bench/agent.py`` measures idle RSS). ``wellcar.trust.errors`` is stdlib-only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wellcar.agent.config import DEFAULT_GROUP, AgentConfig
from wellcar.agent.errors import (
    AgentError,
    ConfigError,
    TrustMetadataError,
    UntrustedPayloadError,
)
from wellcar.agent.omaha_client import UpdateOffer
from wellcar.logline import log_fields
from wellcar.omaha.codes import ErrorCode
from wellcar.trust.channels import NodeChannel
from wellcar.trust.errors import TargetMismatchError, TargetRejectedError, TrustError

if TYPE_CHECKING:
    from wellcar.trust.client import TrustedUpdateVerifier, VerifiedTarget
    from wellcar.trust.fetcher import HttpxFetcher

__all__ = ["Admission", "TrustGate", "agent_error"]

log = logging.getLogger("wellcar.agent")


@dataclass(frozen=True)
class Admission:
    """An offer the gate let through; hand it back to :meth:`TrustGate.verify_download`.

    ``target`` is None when the gate is off (no root shipped): nothing to check then."""

    version: str
    target: VerifiedTarget | None = None
    verifier: TrustedUpdateVerifier | None = None
    channel: NodeChannel | None = None


def agent_error(exc: TrustError, version: str) -> AgentError:
    """The agent error (and so the Omaha error code) for a refusal of the verifier."""
    if isinstance(exc, TargetMismatchError):
        return UntrustedPayloadError(
            f"payload {version}: {exc}", error_code=ErrorCode.PAYLOAD_HASH_MISMATCH
        )
    if isinstance(exc, TargetRejectedError):
        return UntrustedPayloadError(f"payload {version}: {exc}")
    # MetadataRefreshError and anything else the client raises: no trustworthy view of
    # the repository now, so install nothing and let the next check try again.
    return TrustMetadataError(f"release metadata (TUF): {exc}")


def _shipped(root: Path) -> bool:
    """Whether the image ships a root; when that cannot be told, assume it does (the
    refresh then says what is wrong) rather than silently installing unverified."""
    try:
        return root.exists() or root.is_symlink()
    except OSError:
        return True


class TrustGate:
    """Decides, per offer, whether TUF has to vouch for it, and asks it.

    One gate per agent; a new :class:`TrustedUpdateVerifier` per offer, because python-tuf's
    updater refreshes once per instance and each check must see the repository as it is
    now. The metadata cache (``AgentConfig.trust_dir``) persists across checks and reboots:
    it is what makes a rollback of the metadata detectable."""

    def __init__(
        self,
        trust_root: Path,
        metadata_dir: Path,
        repository: str | None,
        *,
        board: str,
        running_version: str,
        http_timeout: float = 60.0,
        channel: str | None = None,
        group: str = DEFAULT_GROUP,
    ) -> None:
        self.channel = channel  # CHANNEL= (the operator's choice), else worked out
        self.group = group
        self.trust_root = trust_root
        self.metadata_dir = metadata_dir
        self.repository = repository
        self.board = board
        self.running_version = running_version
        self.http_timeout = http_timeout
        # Decided once: /usr is read-only, and a root that was there at start must not
        # stop being required because it became unreadable later (refresh reports that).
        self.required = _shipped(trust_root)
        self._fetcher: HttpxFetcher | None = None  # one HTTP client for the agent's life

    @classmethod
    def from_config(cls, config: AgentConfig) -> TrustGate:
        """The gate for ``config``; :meth:`log_mode` says whether TUF is on."""
        return cls(
            config.trust_root,
            config.trust_dir,
            config.release_repository,
            board=config.board,
            running_version=config.version,
            http_timeout=config.http_timeout.total_seconds(),
            channel=config.channel,
            group=config.group,
        )

    def log_mode(self) -> None:
        """Once, after the agent started: whether TUF is on, off, or misconfigured."""
        if not self.required:
            log.info(
                "trust off: no TUF root shipped, payloads are checked by their signature only",
                extra=log_fields(root=self.trust_root),
            )
        elif self.repository is None:
            log.error(
                "trust misconfigured",
                extra=log_fields(root=self.trust_root, error=self._no_repository()),
            )
        else:
            log.info(
                "trust on",
                extra=log_fields(
                    root=self.trust_root, repository=self.repository, cache=self.metadata_dir
                ),
            )

    def _no_repository(self) -> str:
        return (
            f"the image ships a TUF root ({self.trust_root}) but RELEASE_REPOSITORY is not set: "
            "no update is installed without verified release metadata; set "
            "RELEASE_REPOSITORY=<base URL of the release tree> in update.conf"
        )

    def _verifier(self, repository: str) -> TrustedUpdateVerifier:
        # Imported here, not at the top: python-tuf and securesystemslib cost memory that
        # an agent without a shipped root should not pay.
        from wellcar.trust.client import TrustedUpdateVerifier
        from wellcar.trust.fetcher import HttpxFetcher

        if self._fetcher is None:
            self._fetcher = HttpxFetcher(timeout=self.http_timeout, user_agent="wellcar-agent")
        return TrustedUpdateVerifier(
            self.metadata_dir, self.trust_root, repository, board=self.board, fetcher=self._fetcher
        )

    def admit_offer(self, offer: UpdateOffer) -> Admission:
        """Refresh the metadata and find the signed payload of ``offer``; raise an
        :class:`AgentError` (nothing downloaded) when TUF does not vouch for it."""
        if not self.required:
            return Admission(offer.version)
        if self.repository is None:
            raise ConfigError(self._no_repository())
        verifier = self._verifier(self.repository)
        try:
            state = verifier.refresh()
            target = verifier.find_payload(offer.version)
            channel = verifier.node_channel(self.channel, self.group, self.running_version)
            if channel is None:
                raise UntrustedPayloadError(
                    f"payload {offer.version}: cannot tell which channel this node follows "
                    f"(its release {self.running_version} is not in the signed metadata and "
                    f"GROUP={self.group} names none of its channels); set CHANNEL=<name> in "
                    "update.conf — nothing was downloaded"
                )
            if channel.switched:
                log.warning(
                    "channel switched by the operator",
                    extra=log_fields(reason=channel.describe(), version=offer.version),
                )
            # Refused now rather than after a download of hundreds of MB; verify_payload
            # checks it again.
            verifier.admit(target, self.running_version, channel)
        except TrustError as exc:
            raise agent_error(exc, offer.version) from None
        log.info(
            "trust refreshed",
            extra=log_fields(
                root_version=state.root_version,
                timestamp_version=state.timestamp_version,
                snapshot_version=state.snapshot_version,
                targets_version=state.targets_version,
                expires=state.expires.isoformat(),
            ),
        )
        if offer.size != target.length:
            raise UntrustedPayloadError(
                f"payload {offer.version}: the update server offers {offer.size} bytes, the "
                f"release keys signed {target.length} for {target.name}; the server or its "
                "package is wrong — nothing was downloaded",
                error_code=ErrorCode.PAYLOAD_SIZE_MISMATCH,
            )
        if target.sha256 and offer.sha256_hex != target.sha256:
            raise UntrustedPayloadError(
                f"payload {offer.version}: the update server's SHA-256 {offer.sha256_hex} is not "
                f"the signed {target.sha256} of {target.name}; the server or its package is "
                "wrong — nothing was downloaded",
                error_code=ErrorCode.PAYLOAD_HASH_MISMATCH,
            )
        log.info(
            "trust admitted",
            extra=log_fields(version=offer.version, target=target.name, length=target.length),
        )
        return Admission(offer.version, target, verifier, channel)

    def verify_download(self, admission: Admission, path: Path) -> None:
        """Admit the downloaded ``path`` for installation, or raise an :class:`AgentError`
        (an :class:`UntrustedPayloadError` means: delete the file, it is not the release)."""
        if admission.target is None or admission.verifier is None:
            if self.required:  # an Admission made while off can never pass while on
                raise UntrustedPayloadError(
                    f"payload {admission.version} was not admitted by TUF; refusing it"
                )
            return
        try:
            admission.verifier.verify_payload(
                admission.target.name, path, self.running_version, admission.channel
            )
        except TrustError as exc:
            raise agent_error(exc, admission.version) from None
        log.info(
            "trust verified",
            extra=log_fields(version=admission.version, target=admission.target.name),
        )
