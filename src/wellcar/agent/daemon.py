"""The update agent: update_engine and locksmith as one loop.

One boot of a node, as the agent sees it:

1. ``boot()``: assess the boot (health checks; a slot on trial is marked good, or bad and
   the node reboots into the other one), then recover the persisted status (a crash or
   power loss at any point restarts cleanly, see ``status_store.recover``).
2. ``run()``: the first check after the initial delay, then every interval (the server's
   PollInterval honoured, backoff on server errors). Each check walks the state machine:
   CHECKING → UPDATE_AVAILABLE → DOWNLOADING (13/1) → VERIFYING (14/1) → FINALIZING
   (install into the inactive slot, verified) → UPDATED_NEED_REBOOT (3/1); a failure
   anywhere is REPORTING_ERROR_EVENT (3/0 + error code) → IDLE.
3. While UPDATED_NEED_REBOOT, the reboot strategy decides when (window, FleetLock), and
   the agent only pings. After the reboot, the next check reports 3/2, or 3/0 with error
   code 44 when the node came back on the old version.

Every state is saved before the step it names starts, so the saved state is always a
safe place to resume from.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import httpx

from wellcar.agent.config import AgentConfig
from wellcar.agent.download import download_payload, remove_stale
from wellcar.agent.errors import (
    AgentError,
    OmahaHTTPError,
    ServerUnreachable,
    UntrustedPayloadError,
)
from wellcar.agent.health import BootAssessor, BootOutcome, BootReport
from wellcar.agent.live_backend import LiveSystemBackend, NoSlotsError
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.omaha_client import InstallSource, NoUpdate, OmahaClient, UpdateOffer
from wellcar.agent.reboot import RebootAction, RebootStrategy
from wellcar.agent.schedule import CheckSchedule, next_failure_count
from wellcar.agent.slot_backend import SlotBackend
from wellcar.agent.state import Trigger, UpdateState
from wellcar.agent.state_dir import StateDir
from wellcar.agent.status_store import AgentStatus, StatusStore, recover
from wellcar.agent.trusted_payload import TrustGate
from wellcar.disk import DiskError, Slot
from wellcar.logline import log_fields
from wellcar.omaha.codes import ErrorCode
from wellcar.payload.errors import (
    PayloadError,
    PayloadFormatError,
    PayloadIntegrityError,
    PayloadSignatureError,
    SourceMismatchError,
)
from wellcar.payload.reader import file_opener
from wellcar.payload.resume import CheckpointFile
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.slot_install import install_into_slot

log = logging.getLogger("wellcar.agent")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CheckResult(StrEnum):
    DISABLED = "updates-disabled"
    CHECK_FAILED = "check-failed"
    NO_UPDATE = "no-update"
    UPDATED = "updated-need-reboot"
    FAILED = "failed"
    REBOOTING = "rebooting"


def payload_error_code(exc: PayloadError | DiskError) -> int:
    """update_engine's error code for an install failure."""
    if isinstance(exc, PayloadSignatureError):
        return int(ErrorCode.SIGNATURE_VERIFICATION_FAILED)
    if isinstance(exc, PayloadIntegrityError | SourceMismatchError):
        return int(ErrorCode.PAYLOAD_HASH_MISMATCH)
    if isinstance(exc, PayloadFormatError):
        return (
            int(ErrorCode.BAD_MAGIC) if "CrAU" in str(exc) else int(ErrorCode.MANIFEST_PARSE_ERROR)
        )
    if isinstance(exc, DiskError):
        return int(ErrorCode.SET_BOOTABLE_FLAG_ERROR)
    return int(ErrorCode.INSTALL_DEVICE_OPEN_ERROR)


@dataclass
class AgentParts:
    """Everything the agent talks to; tests replace the machine, never the logic."""

    config: AgentConfig
    identity: NodeIdentity
    backend: SlotBackend
    http: httpx.Client
    trusted_keys: TrustedKeys | None
    reboot: RebootStrategy
    assessor: BootAssessor
    now: Callable[[], datetime] = _utc_now
    rng: random.Random = field(default_factory=random.Random)
    # TUF; None = decided from the config (a shipped TRUST_ROOT makes it required).
    trust: TrustGate | None = None

    @property
    def live(self) -> bool:
        """A live boot (ISO, PXE): no slots, so the agent only reports the node."""
        return isinstance(self.backend, LiveSystemBackend)


class UpdateAgent:
    def __init__(self, parts: AgentParts) -> None:
        self.parts = parts
        self.config = parts.config
        self.backend = parts.backend
        self.store = StatusStore(parts.config.status_path)
        self.schedule = CheckSchedule.from_config(parts.config)
        self.identity = parts.identity
        self.trust = parts.trust if parts.trust is not None else TrustGate.from_config(parts.config)
        self._omaha: OmahaClient | None = None  # made in boot(), when updates are enabled
        self.report: BootReport | None = None  # None on a live system: nothing to assess
        self.booted = False
        self.rebooting = False
        self.poll_interval: timedelta | None = None
        self.next_reboot_try: datetime | None = None
        self.next_release_try: datetime | None = None
        self._wake = threading.Event()
        self._requests: list[InstallSource] = []
        self._lock = threading.Lock()  # one check at a time (daemon loop vs. control socket)

    # --- boot ---------------------------------------------------------------------

    def _note_next_check(self, when: datetime) -> None:
        # Persisted so that `status` shows when the agent checks again (backoff visible).
        with self._lock:
            self._save(replace(self.store.load(), next_check_time=when))

    def running_version(self) -> str:
        if self.parts.live:
            return self.parts.identity.version  # the live media's os-release
        booted = self.backend.booted_slot()
        recorded = self.backend.slot_table().slot(booted).record.version
        return recorded or self.parts.identity.version

    def boot(self) -> BootReport | None:
        """Assess this boot and recover the saved status; call once per boot, first."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.booted = True
        if self.parts.live:
            self._boot_live()
            return None
        report = self.parts.assessor.assess()
        self.report = report
        running = self.running_version()
        # The Omaha identity follows the slot actually running, with this boot's id.
        self.identity = replace(
            self.parts.identity, version=running, boot_id=self.backend.boot_id()
        )
        if self.config.updates_enabled:
            self._omaha = OmahaClient(self.config, self.identity, self.parts.http)
        status = recover(self.store.load(), boot_id=self.identity.boot_id, running_version=running)
        if report.outcome is BootOutcome.ROLLED_BACK_FROM and report.failed_version:
            status = replace(status, rolled_back_version=report.failed_version)
        self.store.save(status)
        log.info(
            "boot",
            extra=log_fields(
                slot=report.booted_slot.value,
                version=running,
                outcome=report.outcome.value,
                state=status.state,
            ),
        )
        if report.outcome is BootOutcome.MARKED_BAD_REBOOTING:
            self.rebooting = True
        elif report.outcome is not BootOutcome.UNHEALTHY_NO_FALLBACK:
            self.next_release_try = self.parts.now()  # steady state: release a reboot lock
        return report

    def _boot_live(self) -> None:
        # Nothing to assess: no slot is on trial, and nothing else could be booted.
        running = self.running_version()
        self.identity = replace(
            self.parts.identity, version=running, boot_id=self.backend.boot_id()
        )
        if self.config.updates_enabled:
            self._omaha = OmahaClient(self.config, self.identity, self.parts.http)
        status = recover(self.store.load(), boot_id=self.identity.boot_id, running_version=running)
        self.store.save(status)
        log.info("boot", extra=log_fields(slot="live", version=running, state=status.state))

    # --- one check ----------------------------------------------------------------

    @property
    def omaha(self) -> OmahaClient:
        if self._omaha is None:
            raise AgentError("updates are disabled (SERVER=disabled) or the agent has not booted")
        return self._omaha

    def status(self) -> AgentStatus:
        return self.store.load()

    def _save(self, status: AgentStatus) -> AgentStatus:
        self.store.save(status)
        return status

    def _event(self, send: Callable[[AgentStatus], object], status: AgentStatus) -> None:
        # A lost event must not stop an install: update_engine does not retry them either.
        try:
            send(status)
        except AgentError as exc:
            log.warning("event not delivered", extra=log_fields(error=exc))

    def check(self, source: InstallSource = InstallSource.SCHEDULER) -> CheckResult:
        with self._lock:
            return self._check(source)

    def _check(self, source: InstallSource) -> CheckResult:
        if self.rebooting:
            return CheckResult.REBOOTING
        if not self.config.updates_enabled:
            return CheckResult.DISABLED
        status = self.store.load()
        if status.state is UpdateState.UPDATED_NEED_REBOOT:
            self._event(self.omaha.ping, status)
            return self._reboot_when_allowed()
        status = self._save(status.advance(Trigger.CHECK))
        try:
            if self.parts.live:
                # Reported, never offered anything: a ping is not an update check.
                self.omaha.ping(status)
                self._save(status.checked_in(self.parts.now()).advance(Trigger.NO_UPDATE))
                return CheckResult.NO_UPDATE
            result = self.omaha.check_for_update(status, install_source=source)
        except AgentError as exc:
            failures = next_failure_count(status.consecutive_check_failures, exc)
            log.warning("update check failed", extra=log_fields(code=exc.error_code, error=exc))
            if isinstance(exc, ServerUnreachable | OmahaHTTPError):
                # Nobody to tell: back off and ask again later.
                self._save(
                    status.advance(
                        Trigger.CHECK_FAILED,
                        consecutive_check_failures=failures,
                        last_error_code=exc.error_code,
                        last_error_message=str(exc)[:500],
                    )
                )
                return CheckResult.CHECK_FAILED
            # The server answered, but nothing usable (garbage, a wrong hash field, an
            # older version): report 3/0 with the code, as update_engine does (34).
            status = self._save(
                replace(
                    status.failed(exc.error_code, str(exc)), consecutive_check_failures=failures
                )
            )
            code = exc.error_code
            self._event(lambda s: self.omaha.report_error(s, code), status)
            self._save(status.advance(Trigger.ERROR_REPORTED))
            return CheckResult.CHECK_FAILED
        status = status.checked_in(self.parts.now())
        self.poll_interval = result.poll_interval
        if isinstance(result, NoUpdate):
            self._save(status.advance(Trigger.NO_UPDATE))
            return CheckResult.NO_UPDATE
        if result.version == status.rolled_back_version:
            # It booted here before and failed: do not loop install → fail → roll back.
            # Telling the server (3/0, errorcode 44 again) takes the node out of its
            # in-progress count, so the declined grant does not hold up the rollout.
            log.warning(
                "not installing it again: it failed on this node",
                extra=log_fields(version=result.version),
            )
            status = self._save(status.advance(Trigger.NO_UPDATE))
            self._event(lambda s: self.omaha.report_error(s, int(ErrorCode.ROLLBACK)), status)
            return CheckResult.NO_UPDATE
        self.config.full_response_path.parent.mkdir(parents=True, exist_ok=True)
        self.config.full_response_path.write_bytes(result.response_body)
        status = self._save(status.with_offer(result))
        return self._install(status, result)

    def _install(
        self, status: AgentStatus, offer: UpdateOffer, local: Path | None = None
    ) -> CheckResult:
        """Download ``offer`` and install it; with ``local``, install that payload file
        (no download, no TUF, no Omaha events: an offline update)."""
        path: Path | None = local
        try:
            if local is None:
                # Before the download: nothing is fetched for an offer the release keys
                # did not sign (a no-op without a shipped TUF root).
                admission = self.trust.admit_offer(offer)
                status = self._save(status.advance(Trigger.DOWNLOAD_STARTED))
                self._event(self.omaha.report_download_started, status)
                remove_stale(self.config.download_dir, keep=offer)
                path = download_payload(
                    offer,
                    self.config.download_dir,
                    self.parts.http,
                    auth=self.config.download_auth,
                )
                status = self._save(
                    status.advance(Trigger.DOWNLOAD_FINISHED, downloaded_bytes=offer.size)
                )
                self._event(self.omaha.report_download_finished, status)
                # Size and the Omaha sha256 are checked, and TUF's signed length and hashes
                # now; the payload's own signature and every hash inside it are checked
                # while it is applied, before the slot may boot.
                self.trust.verify_download(admission, path)
            else:
                status = self._save(status.advance(Trigger.DOWNLOAD_STARTED))
                status = self._save(
                    status.advance(Trigger.DOWNLOAD_FINISHED, downloaded_bytes=offer.size)
                )
            assert path is not None
            status = self._save(status.advance(Trigger.VERIFIED))
            table = self.backend.slot_table()
            target = table.update_target
            if target is None:
                raise AgentError("no inactive slot to install into")
            self.backend.remove_boot_entry(target)
            installed = install_into_slot(
                file_opener(path),
                self.backend.payload_image(),
                table,
                self.parts.trusted_keys,
                offer.version,
                slot=target,
                make_bootable=True,
                tries=1,
                checkpoint=CheckpointFile(StateDir(self.config.state_dir).apply_progress),
                kernel=self.backend.kernel_path(target),
                initrd=self.backend.initrd_path(target),
            )
            # The verity parameters come from the manifest just verified with the payload.
            self.backend.write_boot_entry(
                target, version=offer.version, tries=1, verity=installed.apply.usr_verity
            )
            status = self._save(
                status.advance(Trigger.INSTALLED, install_boot_id=self.identity.boot_id)
            )
            if local is None:
                self._event(self.omaha.report_installed, status)
                path.unlink(missing_ok=True)
            log.info("installed", extra=log_fields(version=offer.version, slot=target.value))
        except (AgentError, PayloadError, DiskError) as exc:
            code = exc.error_code if isinstance(exc, AgentError) else payload_error_code(exc)
            log.error(
                "update failed", extra=log_fields(version=offer.version, code=code, error=exc)
            )
            status = self._save(status.failed(code, str(exc)))
            refused = PayloadIntegrityError | PayloadSignatureError | UntrustedPayloadError
            if isinstance(exc, refused) and path and local is None:
                path.unlink(missing_ok=True)  # never retry a payload that failed verification
            try:
                self.omaha.report_error(status, code)
            except AgentError as report_exc:
                log.warning("error event not delivered", extra=log_fields(error=report_exc))
            self._save(status.advance(Trigger.ERROR_REPORTED))
            return CheckResult.FAILED
        return self._reboot_when_allowed()

    # --- reboots ------------------------------------------------------------------

    def _reboot_when_allowed(self) -> CheckResult:
        now = self.parts.now()
        decision = self.parts.reboot.decide(now)
        if decision.action is RebootAction.REBOOT:
            log.info("rebooting", extra=log_fields(reason=decision.reason))
            self.parts.reboot.before_reboot()
            self.rebooting = True
            self.backend.reboot()
            return CheckResult.REBOOTING
        self.next_reboot_try = decision.retry_at
        log.info(
            "reboot decided",
            extra=log_fields(action=decision.action.value, reason=decision.reason),
        )
        return CheckResult.UPDATED

    def _release_after_boot(self) -> None:
        now = self.parts.now()
        self.next_release_try = self.parts.reboot.after_boot(now)

    # --- commands -----------------------------------------------------------------

    def wake(self) -> None:
        """Make ``run`` look at its stop event and requests now instead of sleeping on."""
        self._wake.set()

    def request_check(self, source: InstallSource = InstallSource.ON_DEMAND) -> None:
        """Ask the running loop to check now (``wellcar agent check``)."""
        self._requests.append(source)
        self._wake.set()

    def reset(self) -> AgentStatus:
        """Forget a pending reboot: the running slot boots next again, the new one never."""
        with self._lock:
            status = self.store.load()
            if status.state is UpdateState.UPDATED_NEED_REBOOT:
                table = self.backend.slot_table()
                target = table.update_target
                if target is not None:
                    table.mark_bad(target)
                    self.backend.remove_boot_entry(target)
            return self._save(status.advance(Trigger.RESET))

    def rollback(self) -> Slot:
        """Boot the other slot next (it must hold a good version): manual rollback."""
        with self._lock:
            table = self.backend.slot_table()
            other = self.backend.booted_slot().other
            table.prioritize(other)
            return other

    def request_reboot(self) -> None:
        """Ask the loop to reboot as soon as the reboot strategy allows (locksmithctl
        send-need-reboot: as if an update waited for a reboot)."""
        self.next_reboot_try = self.parts.now()
        self._wake.set()

    def install_local(self, path: Path, version: str) -> CheckResult:
        """Install a payload file without the server (``wellcar agent update --payload``,
        flatcar-update's offline mode): the payload's signature and every hash are checked
        as for a download; TUF is not consulted (there may be no network)."""
        with self._lock:
            if self.parts.live:
                raise NoSlotsError()
            if self.parts.trusted_keys is None:
                raise AgentError(
                    f"no payload signing keys loaded (from {self.config.payload_key_dir}): "
                    "refusing to install a payload file"
                )
            status = self.store.load()
            if status.state is not UpdateState.IDLE:
                raise AgentError(f"the agent is not idle ({status.state}): try again later")
            size = path.stat().st_size
            offer = UpdateOffer(
                version=version,
                urls=(path.resolve().as_uri(),),
                size=size,
                sha256_b64="",
                package_name=path.name,
            )
            status = self._save(status.advance(Trigger.CHECK).with_offer(offer))
            return self._install(status, offer, local=path)

    # --- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set or the node reboots: boot, then check on schedule."""
        if not self.booted:
            self.boot()
        now = self.parts.now()
        next_check = now + self.schedule.first_delay(self.parts.rng)
        self._note_next_check(next_check)
        while not stop.is_set() and not self.rebooting:
            now = self.parts.now()
            if self.next_release_try is not None and now >= self.next_release_try:
                self._release_after_boot()
            source: InstallSource | None = None
            if self._requests:
                source = self._requests.pop(0)
            elif now >= next_check:
                source = InstallSource.SCHEDULER
            elif self.next_reboot_try is not None and now >= self.next_reboot_try:
                self.next_reboot_try = None
                with self._lock:
                    self._reboot_when_allowed()
                continue
            if source is not None:
                self.check(source)
                failures = self.store.load().consecutive_check_failures
                next_check = self.parts.now() + self.schedule.next_delay(
                    self.parts.rng, consecutive_failures=failures, poll_interval=self.poll_interval
                )
                self._note_next_check(next_check)
                continue
            deadlines = [next_check] + [
                t for t in (self.next_reboot_try, self.next_release_try) if t is not None
            ]
            wait = max(0.0, (min(deadlines) - self.parts.now()).total_seconds())
            self._wake.wait(min(wait, 60.0))
            self._wake.clear()
            if stop.is_set():
                break
