"""The agent's persisted status: what it was doing, for whom, and since when.

Saved as JSON under ``state_dir`` atomically (temporary file, fsync, rename,
fsync of the directory), so a power cut leaves either the old or the new file.
Loading is tolerant anyway: a torn, corrupt or half-understood file yields a
fresh status (or fresh fields) with a warning -- an agent that crashes on its
own state file would never update the node out of the problem.

After a crash or power loss, :func:`recover` maps the state found on disk to a
safe state to restart from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from wellcar.atomic_file import write_file_atomically
from wellcar.logline import log_fields

from .errors import StateError
from .state import Trigger, UpdateState, next_state

__all__ = [
    "STATUS_SCHEMA",
    "AgentStatus",
    "OfferLike",
    "StatusStore",
    "decode_status",
    "encode_status",
    "recover",
]

log = logging.getLogger(__name__)

STATUS_SCHEMA = 1
MAX_STATUS_BYTES = 1024 * 1024
_MAX_TEXT = 4096  # longest string field kept from disk (error messages are truncated)


class OfferLike(Protocol):
    """What :meth:`AgentStatus.with_offer` needs of an offer
    (:class:`wellcar.agent.omaha_client.UpdateOffer` fits)."""

    @property
    def version(self) -> str: ...
    @property
    def urls(self) -> tuple[str, ...]: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256_b64(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AgentStatus:
    state: UpdateState = UpdateState.IDLE
    current_version: str = ""  # the running version when last saved
    # The update in flight (UPDATE_AVAILABLE .. UPDATED_NEED_REBOOT).
    new_version: str | None = None
    new_payload_urls: tuple[str, ...] = ()
    new_payload_size: int = 0
    new_payload_sha256: str | None = None  # base64, as Omaha's postinstall action sends it
    downloaded_bytes: int = 0
    last_check_time: datetime | None = None
    last_error_code: int | None = None  # with flag bits, as reported
    last_error_message: str | None = None
    # The version we ran when the update was installed. While set, the next
    # check reports it: event 3/2 previousversion=… if we now run something
    # else, or 3/0 errorcode=44 if we run it again (rolled back).
    previous_version: str | None = None
    aleph_version: str | None = None  # the first version this node ever ran; set once
    has_checked_in: bool = False  # False until the first successful check (previousversion 0.0.0.0)
    update_attempts: int = 0  # download attempts for new_version
    consecutive_check_failures: int = 0  # server errors in a row, for the backoff
    install_boot_id: str | None = None  # boot id when the update was installed
    rolled_back_version: str | None = None  # the last version that booted and fell back
    # The agent cannot act on its configuration (bad update.conf, no payload keys, ...):
    # it waits and tries again (see wellcar.agent.supervisor); None when it can act.
    blocked_reason: str | None = None
    blocked_since: datetime | None = None
    # When the agent next checks for an update, or retries its start-up while blocked.
    next_check_time: datetime | None = None

    def advance(self, trigger: Trigger, **changes: Any) -> AgentStatus:
        """The status after ``trigger`` (validated by the state machine), with
        ``changes`` applied and the bookkeeping each trigger implies."""
        state = next_state(self.state, trigger)
        implied: dict[str, Any] = {}
        if trigger is Trigger.VERIFIED:
            # From here on the install may flip the boot priority at any moment;
            # remember what we run now so the next boot can tell update from rollback.
            implied["previous_version"] = self.current_version
        elif trigger is Trigger.INSTALLED:
            if changes.get("install_boot_id", self.install_boot_id) is None:
                raise StateError("INSTALLED needs install_boot_id (the current boot id)")
        elif trigger is Trigger.FAILED and self.state is UpdateState.FINALIZING:
            implied["previous_version"] = None  # the slot was not made bootable
        elif trigger is Trigger.RESET and self.state is UpdateState.UPDATED_NEED_REBOOT:
            implied.update(_CLEARED_OFFER, previous_version=None, install_boot_id=None)
        implied.update(changes)
        return replace(self, state=state, **implied)

    def with_offer(self, offer: OfferLike) -> AgentStatus:
        """UPDATE_FOUND with ``offer`` recorded. A different payload than the one
        recorded starts from zero (bytes downloaded and attempts)."""
        same = self.new_payload_sha256 == offer.sha256_b64 and self.new_version == offer.version
        return self.advance(
            Trigger.UPDATE_FOUND,
            new_version=offer.version,
            new_payload_urls=tuple(offer.urls),
            new_payload_size=offer.size,
            new_payload_sha256=offer.sha256_b64,
            downloaded_bytes=self.downloaded_bytes if same else 0,
            update_attempts=self.update_attempts if same else 0,
        )

    def failed(self, error_code: int, message: str) -> AgentStatus:
        """FAILED with the error recorded (REPORTING_ERROR_EVENT)."""
        return self.advance(
            Trigger.FAILED, last_error_code=error_code, last_error_message=message[:_MAX_TEXT]
        )

    def checked_in(self, now: datetime) -> AgentStatus:
        """The server accepted an update check: previousversion / rollback are
        reported, the first-ever check is done, the backoff resets. Does not
        change the state."""
        return replace(
            self,
            has_checked_in=True,
            previous_version=None,
            last_check_time=now,
            consecutive_check_failures=0,
        )


_CLEARED_OFFER: dict[str, Any] = {
    "new_version": None,
    "new_payload_urls": (),
    "new_payload_size": 0,
    "new_payload_sha256": None,
    "downloaded_bytes": 0,
}


def recover(status: AgentStatus, *, boot_id: str, running_version: str) -> AgentStatus:
    """The safe status to restart from, given the one found on disk.

    * IDLE stays; CHECKING_FOR_UPDATE and UPDATE_AVAILABLE go back to IDLE (the
      next check asks again).
    * DOWNLOADING and VERIFYING go to IDLE keeping the offer and the partial
      download: the next check will most likely offer the same payload, and
      the download resumes where it stopped.
    * FINALIZING goes to IDLE and the install must be redone: the inactive
      slot may be half-written. If we already run the new version, the
      install had completed and we rebooted into it; previous_version is kept
      so the next check reports 3/2.
    * UPDATED_NEED_REBOOT stays while the boot id is the one of the install;
      otherwise the node rebooted: IDLE, and the next check reports 3/2 (new
      version running) or 3/0 errorcode 44 (the old one again: rolled back).
    * REPORTING_ERROR_EVENT goes to IDLE; the unsent report is dropped (the
      error stays in last_error_* for status output), as update_engine does.

    The running version is recorded, and the aleph version if still unknown.
    """
    st = status
    base: dict[str, Any] = {"current_version": running_version}
    if st.aleph_version is None:
        base["aleph_version"] = running_version
    state = st.state
    idle = UpdateState.IDLE
    if state is UpdateState.UPDATED_NEED_REBOOT:
        rebooted = running_version == st.new_version or (
            st.install_boot_id is not None and st.install_boot_id != boot_id
        )
        if not rebooted:
            return replace(st, **base)
        changes: dict[str, Any] = {**base, **_CLEARED_OFFER, "install_boot_id": None}
        if st.previous_version is not None and running_version == st.previous_version:
            changes["rolled_back_version"] = st.new_version
            log.warning(
                "rebooted into the old version again: the new one rolled back",
                extra=log_fields(version=running_version, new_version=st.new_version),
            )
        return replace(st, state=idle, **changes)
    if state is UpdateState.FINALIZING:
        keep_previous = st.new_version is not None and running_version == st.new_version
        return replace(
            st,
            state=idle,
            previous_version=st.previous_version if keep_previous else None,
            **base,
            **_CLEARED_OFFER,
        )
    # DOWNLOADING, VERIFYING (the offer and the partial download are kept for the
    # resume), CHECKING_FOR_UPDATE, UPDATE_AVAILABLE, REPORTING_ERROR_EVENT, IDLE.
    return replace(st, state=UpdateState.IDLE, **base)


# --- JSON ----------------------------------------------------------------------------


def encode_status(status: AgentStatus) -> str:
    out: dict[str, Any] = {"schema": STATUS_SCHEMA}
    for f in fields(AgentStatus):
        value = getattr(status, f.name)
        if isinstance(value, UpdateState):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


_TEXT_FIELDS = frozenset(
    {
        "current_version",
        "new_version",
        "new_payload_sha256",
        "last_error_message",
        "previous_version",
        "aleph_version",
        "install_boot_id",
        "rolled_back_version",
        "blocked_reason",
    }
)
_TIME_FIELDS = frozenset({"last_check_time", "blocked_since", "next_check_time"})
_COUNT_FIELDS = frozenset(
    {"new_payload_size", "downloaded_bytes", "update_attempts", "consecutive_check_failures"}
)


def _decode_field(name: str, value: Any, default: Any) -> Any:
    """The field's value, or raise ValueError. None stays None where the
    default is None (optional fields)."""
    if value is None and default is None:
        return None
    if name == "state":
        return UpdateState(value)
    if name in _TEXT_FIELDS:
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise ValueError("not a string")
        return value
    if name in _COUNT_FIELDS:
        if type(value) is not int or value < 0:
            raise ValueError("not a non-negative integer")
        return value
    if name == "last_error_code":
        if type(value) is not int:
            raise ValueError("not an integer")
        return value
    if name == "has_checked_in":
        if type(value) is not bool:
            raise ValueError("not a boolean")
        return value
    if name in _TIME_FIELDS:
        if not isinstance(value, str):
            raise ValueError("not a timestamp")
        return datetime.fromisoformat(value)
    if name == "new_payload_urls":
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise ValueError("not a list of strings")
        return tuple(value)
    raise ValueError("unknown field")  # pragma: no cover - every field is handled above


def decode_status(text: str | bytes, where: str = "status") -> tuple[AgentStatus, list[str]]:
    """Decode, field by field: a bad field gets its default and a warning; an
    unreadable document gives a fresh status and a warning."""
    warnings: list[str] = []
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return AgentStatus(), [f"{where}: unreadable ({exc}); starting from a fresh status"]
    if not isinstance(doc, dict):
        return AgentStatus(), [f"{where}: not a JSON object; starting from a fresh status"]
    schema = doc.get("schema")
    if schema != STATUS_SCHEMA:
        warnings.append(f"{where}: schema {schema!r}, expected {STATUS_SCHEMA}; reading anyway")
    fresh = AgentStatus()
    values: dict[str, Any] = {}
    for f in fields(AgentStatus):
        if f.name not in doc:
            continue
        default = getattr(fresh, f.name)
        try:
            values[f.name] = _decode_field(f.name, doc[f.name], default)
        except (ValueError, TypeError):
            warnings.append(f"{where}: field {f.name} is invalid; using the default")
    return AgentStatus(**values), warnings


class StatusStore:
    """Load and save :class:`AgentStatus` at ``path`` (``config.status_path``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []  # from the last load

    def load(self) -> AgentStatus:
        """The saved status; a fresh one when there is none or it is unusable."""
        self.warnings = []
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_STATUS_BYTES + 1)
        except FileNotFoundError:
            return AgentStatus()
        except OSError as exc:
            self.warnings.append(f"{self.path}: cannot read ({exc.strerror}); fresh status")
            log.warning("status file unusable", extra=log_fields(warning=self.warnings[-1]))
            return AgentStatus()
        if len(data) > MAX_STATUS_BYTES:
            self.warnings.append(f"{self.path}: larger than {MAX_STATUS_BYTES} bytes; fresh status")
            status = AgentStatus()
        else:
            status, self.warnings = decode_status(data, str(self.path))
        for warning in self.warnings:
            log.warning("status file", extra=log_fields(warning=warning))
        return status

    def save(self, status: AgentStatus) -> None:
        """Replace the file atomically and durably."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        # 0644: `wellcar agent status` reads it without root.
        write_file_atomically(self.path, encode_status(status), mode=0o644)
