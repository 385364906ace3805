"""update_engine's states as an explicit state machine.

The states and their numbers are update_engine's (``UPDATE_STATUS_*`` on D-Bus
``com.coreos.update1``), so ``str(state)`` prints what ``update_engine_client
-status`` would. Unlike update_engine, Wellcar really enters ``VERIFYING``
(between the download and the install), because it verifies the whole payload
before writing a byte into the inactive slot.

Every change of state goes through :func:`next_state`, which knows exactly which
``(state, trigger)`` pairs are allowed; anything else is a bug in the caller
and raises :class:`InvalidTransition` instead of silently corrupting the
persisted status.

::

    IDLE --CHECK--> CHECKING_FOR_UPDATE --NO_UPDATE / CHECK_FAILED--> IDLE
    CHECKING_FOR_UPDATE --UPDATE_FOUND--> UPDATE_AVAILABLE --DOWNLOAD_STARTED--> DOWNLOADING
    DOWNLOADING --DOWNLOAD_FINISHED--> VERIFYING --VERIFIED--> FINALIZING
    FINALIZING --INSTALLED--> UPDATED_NEED_REBOOT --REBOOTED / RESET--> IDLE
    any busy state --FAILED--> REPORTING_ERROR_EVENT --ERROR_REPORTED--> IDLE
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from .errors import InvalidTransition

__all__ = [
    "BUSY_STATES",
    "TRANSITIONS",
    "InvalidTransition",
    "Trigger",
    "UpdateState",
    "allowed_triggers",
    "next_state",
    "update_engine_operation",
]


class UpdateState(StrEnum):
    IDLE = "UPDATE_STATUS_IDLE"
    CHECKING_FOR_UPDATE = "UPDATE_STATUS_CHECKING_FOR_UPDATE"
    UPDATE_AVAILABLE = "UPDATE_STATUS_UPDATE_AVAILABLE"
    DOWNLOADING = "UPDATE_STATUS_DOWNLOADING"
    VERIFYING = "UPDATE_STATUS_VERIFYING"
    FINALIZING = "UPDATE_STATUS_FINALIZING"
    UPDATED_NEED_REBOOT = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
    REPORTING_ERROR_EVENT = "UPDATE_STATUS_REPORTING_ERROR_EVENT"

    @property
    def code(self) -> int:
        """update_engine's numeric status (0 IDLE … 7 REPORTING_ERROR_EVENT)."""
        return _CODES[self]


_CODES = {state: i for i, state in enumerate(UpdateState)}


class Trigger(StrEnum):
    """What happened; together with the current state it decides the next."""

    CHECK = "check"  # a scheduled or on-demand update check starts
    NO_UPDATE = "no-update"  # the server has nothing newer
    CHECK_FAILED = "check-failed"  # no usable answer; nothing to report (server unreachable)
    UPDATE_FOUND = "update-found"  # the server offered a payload
    DOWNLOAD_STARTED = "download-started"  # event 13/1 sent, bytes flowing
    DOWNLOAD_FINISHED = "download-finished"  # all bytes on disk (event 14/1)
    VERIFIED = "verified"  # size, hash and signature checked
    INSTALLED = "installed"  # written to the inactive slot and made bootable (event 3/1)
    FAILED = "failed"  # any error worth telling the server about (event 3/0 + errorcode)
    ERROR_REPORTED = "error-reported"  # the 3/0 was sent (or given up on)
    REBOOTED = "rebooted"  # the boot id changed since the install
    RESET = "reset"  # `-reset_status`: forget a pending reboot


_S = UpdateState
_T = Trigger
_BUSY = (
    _S.CHECKING_FOR_UPDATE,
    _S.UPDATE_AVAILABLE,
    _S.DOWNLOADING,
    _S.VERIFYING,
    _S.FINALIZING,
)

TRANSITIONS: Mapping[tuple[UpdateState, Trigger], UpdateState] = MappingProxyType(
    {
        (_S.IDLE, _T.CHECK): _S.CHECKING_FOR_UPDATE,
        (_S.IDLE, _T.RESET): _S.IDLE,
        (_S.CHECKING_FOR_UPDATE, _T.NO_UPDATE): _S.IDLE,
        (_S.CHECKING_FOR_UPDATE, _T.CHECK_FAILED): _S.IDLE,
        (_S.CHECKING_FOR_UPDATE, _T.UPDATE_FOUND): _S.UPDATE_AVAILABLE,
        (_S.UPDATE_AVAILABLE, _T.DOWNLOAD_STARTED): _S.DOWNLOADING,
        (_S.DOWNLOADING, _T.DOWNLOAD_FINISHED): _S.VERIFYING,
        (_S.VERIFYING, _T.VERIFIED): _S.FINALIZING,
        (_S.FINALIZING, _T.INSTALLED): _S.UPDATED_NEED_REBOOT,
        (_S.UPDATED_NEED_REBOOT, _T.REBOOTED): _S.IDLE,
        (_S.UPDATED_NEED_REBOOT, _T.RESET): _S.IDLE,
        (_S.REPORTING_ERROR_EVENT, _T.ERROR_REPORTED): _S.IDLE,
        **{(state, _T.FAILED): _S.REPORTING_ERROR_EVENT for state in _BUSY},
    }
)

BUSY_STATES: frozenset[UpdateState] = frozenset(_BUSY)
"""States in which an update attempt is in flight (after a crash,
:func:`wellcar.agent.status_store.recover` decides where to restart)."""


def next_state(state: UpdateState, trigger: Trigger) -> UpdateState:
    """The state after ``trigger`` in ``state``; InvalidTransition if not allowed."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(str(state), str(trigger)) from None


def allowed_triggers(state: UpdateState) -> frozenset[Trigger]:
    return frozenset(t for (s, t) in TRANSITIONS if s is state)


def update_engine_operation(state: UpdateState, *, blocked: bool = False) -> str:
    """The ``CURRENT_OP`` that ``update_engine_client -status`` prints for the agent's state.

    The one place the agent's states meet update_engine's names. A blocked agent (a
    configuration it cannot act on, see ``wellcar.agent.supervisor``) is idle to
    update_engine's clients, as update_engine with ``SERVER=disabled`` is; the reason
    is in the status's other lines. Every ``UpdateState`` is one of update_engine's.
    """
    if blocked and state not in BUSY_STATES and state is not UpdateState.UPDATED_NEED_REBOOT:
        return UpdateState.IDLE.value
    return state.value
