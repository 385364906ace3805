"""Numeric codes and status strings of Omaha as Flatcar's update_engine and
Nebraska use them.

Sources: update_engine ``omaha_request_action.h`` (``OmahaEvent``) and
``action_processor.h`` (``ActionExitCode``), go-omaha ``codes.go``, Nebraska
``backend/pkg/omaha/omaha.go`` and its ``event_type`` table. The enums are
``IntEnum``/``StrEnum`` so they compare equal to the raw values in
:mod:`wellcar.omaha.model` (which stores plain ``int``/``str``: a client may send
codes we have no name for, and the codec must round-trip them).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum


class EventType(IntEnum):
    """``event@eventtype``."""

    UNKNOWN = 0
    DOWNLOAD_COMPLETE = 1
    INSTALL_COMPLETE = 2
    # update_engine sends 3 for both "installed, reboot pending" (result 1),
    # "booted into the new version" (result 2), failures (result 0 + errorcode)
    # and deferrals (result 9).
    UPDATE_COMPLETE = 3
    DOWNLOAD_STARTED = 13
    DOWNLOAD_FINISHED = 14
    # Only in Nebraska/CoreRoller's event_type table ("install success, update
    # completion prevented by instance"); Nebraska maps 800/1 to "Installed".
    # Flatcar's update_engine never sends it.
    UPDATE_INSTALLED = 800


class EventResult(IntEnum):
    """``event@eventresult``."""

    ERROR = 0
    SUCCESS = 1
    SUCCESS_REBOOT = 2
    SUCCESS_RESTART_BROWSER = 3
    CANCELLED = 4
    ERROR_INSTALLING_MSI = 5
    ERROR_OTHER = 6
    NOUPDATE = 7
    ERROR_INSTALLER_SYSTEM = 8
    UPDATE_DEFERRED = 9
    HANDOFF_ERROR = 10


class ErrorCode(IntEnum):
    """update_engine ``ActionExitCode`` values sent in ``event@errorcode``
    (after OR-ing :class:`ErrorFlag` bits in)."""

    SUCCESS = 0
    ERROR = 1
    OMAHA_REQUEST_ERROR = 2
    OMAHA_RESPONSE_HANDLER_ERROR = 3
    FILESYSTEM_COPIER_ERROR = 4
    POSTINSTALL_RUNNER_ERROR = 5
    SET_BOOTABLE_FLAG_ERROR = 6
    INSTALL_DEVICE_OPEN_ERROR = 7
    KERNEL_DEVICE_OPEN_ERROR = 8
    DOWNLOAD_TRANSFER_ERROR = 9
    PAYLOAD_HASH_MISMATCH = 10
    PAYLOAD_SIZE_MISMATCH = 11
    DOWNLOAD_PAYLOAD_VERIFICATION_ERROR = 12
    DOWNLOAD_NEW_PARTITION_INFO_ERROR = 13
    DOWNLOAD_WRITE_ERROR = 14
    NEW_ROOTFS_VERIFICATION_ERROR = 15
    NEW_KERNEL_VERIFICATION_ERROR = 16
    SIGNED_DELTA_PAYLOAD_EXPECTED = 17
    SIGNATURE_VERIFICATION_FAILED = 18  # DownloadPayloadPubKeyVerificationError
    POSTINSTALL_BOOTED_FROM_FIRMWARE_B = 19
    DOWNLOAD_STATE_INITIALIZATION_ERROR = 20
    BAD_MAGIC = 21  # DownloadInvalidMetadataMagicString: not a CrAU payload (e.g. a CDN page)
    SIGNATURE_MISSING_IN_MANIFEST = 22
    MANIFEST_PARSE_ERROR = 23
    METADATA_SIGNATURE_ERROR = 24
    METADATA_SIGNATURE_VERIFICATION_ERROR = 25
    METADATA_SIGNATURE_MISMATCH = 26
    OPERATION_HASH_VERIFICATION_ERROR = 27
    OPERATION_EXECUTION_ERROR = 28
    OPERATION_HASH_MISMATCH = 29
    OMAHA_EMPTY_RESPONSE = 30
    OMAHA_XML_PARSE_ERROR = 31
    INVALID_METADATA_SIZE = 32
    INVALID_METADATA_SIGNATURE = 33
    # Anything but updatecheck status "ok"/"noupdate" -- including every
    # Nebraska throttling refusal -- ends up as 34 on the client.
    OMAHA_RESPONSE_INVALID = 34
    OMAHA_UPDATE_IGNORED_PER_POLICY = 35
    OMAHA_UPDATE_DEFERRED_PER_POLICY = 36
    OMAHA_ERROR_IN_HTTP_RESPONSE = 37
    OPERATION_HASH_MISSING = 38
    METADATA_SIGNATURE_MISSING = 39
    DEFERRED_FOR_BACKOFF = 40
    POSTINSTALL_POWERWASH_ERROR = 41
    NEW_PCR_POLICY_VERIFICATION_ERROR = 42
    NEW_PCR_POLICY_HTTP_ERROR = 43
    ROLLBACK = 44
    DOWNLOAD_INCOMPLETE = 100  # internal "EAGAIN", never reported
    # 2000 + HTTP status of a failed Omaha request (e.g. 2503).
    OMAHA_REQUEST_HTTP_RESPONSE_BASE = 2000


class ErrorFlag(IntFlag):
    """Context bits update_engine ORs into ``errorcode``."""

    NONE = 0
    TEST_OMAHA_URL = 1 << 28  # SERVER is not the production update URL
    TEST_IMAGE = 1 << 29  # unofficial (dev/test-signed) build
    RESUMED = 1 << 30  # resumed an interrupted update
    DEV_MODE = 1 << 31  # boot mode not normal


ERROR_FLAG_MASK = int(
    ErrorFlag.TEST_OMAHA_URL | ErrorFlag.TEST_IMAGE | ErrorFlag.RESUMED | ErrorFlag.DEV_MODE
)
HTTP_ERROR_BASE = int(ErrorCode.OMAHA_REQUEST_HTTP_RESPONSE_BASE)


@dataclass(frozen=True, slots=True)
class SplitErrorCode:
    code: int  # the ActionExitCode without flag bits (an ErrorCode member if known)
    flags: ErrorFlag

    @property
    def http_status(self) -> int | None:
        """The HTTP status for codes 2000..2999 ("2000 + HTTP status"), else None."""
        if HTTP_ERROR_BASE <= self.code < HTTP_ERROR_BASE + 1000:
            return self.code - HTTP_ERROR_BASE
        return None

    def describe(self) -> str:
        """E.g. ``"OMAHA_RESPONSE_INVALID (34) + TEST_OMAHA_URL"``."""
        status = self.http_status
        if status is not None:
            name = f"HTTP {status}"
        else:
            try:
                name = f"{ErrorCode(self.code).name} ({self.code})"
            except ValueError:
                name = f"unknown ({self.code})"
        flag_names = [f.name for f in ErrorFlag if f and f in self.flags and f.name]
        return " + ".join([name, *flag_names])


def split_error_code(errorcode: int) -> SplitErrorCode:
    """Split an ``event@errorcode`` into the exit code and its flag bits.

    update_engine formats the unsigned code with ``%d``, so with the dev-mode bit
    set the attribute arrives negative (e.g. ``-2147483614``); the value is taken
    modulo 2**32 first. 268435490 (0x10000022) splits into 34 + TEST_OMAHA_URL.
    """
    unsigned = errorcode & 0xFFFFFFFF
    raw = unsigned & ~ERROR_FLAG_MASK & 0xFFFFFFFF
    code: int = raw
    with contextlib.suppress(ValueError):
        code = ErrorCode(raw)  # keep the name when we know it
    return SplitErrorCode(code=code, flags=ErrorFlag(unsigned & ERROR_FLAG_MASK))


class AppStatus(StrEnum):
    """``app@status`` in a response. The error strings are Nebraska's."""

    OK = "ok"
    # Omaha-standard value used by go-omaha's AppUnknownID.
    UNKNOWN_ID = "error-unknownApplication"
    UNKNOWN_APPLICATION_OR_GROUP = "error-unknownApplicationOrGroup"
    NO_PACKAGE_FOUND = "error-noPackageFound"
    INSTANCE_REGISTRATION_FAILED = "error-instanceRegistrationFailed"
    MAX_UPDATES_PER_PERIOD_LIMIT_REACHED = "error-maxUpdatesPerPeriodLimitReached"
    MAX_CONCURRENT_UPDATES_LIMIT_REACHED = "error-maxConcurrentUpdatesLimitReached"
    MAX_TIMED_OUT_UPDATES_LIMIT_REACHED = "error-maxTimedOutUpdatesLimitReached"
    UPDATES_DISABLED = "error-updatesDisabled"
    COULD_NOT_CHECK_UPDATES_STATS = "error-couldNotCheckUpdatesStats"
    UPDATE_IN_PROGRESS_ON_INSTANCE = "error-updateInProgressOnInstance"
    FAILED_TO_RETRIEVE_UPDATE_PACKAGE_INFO = "error-failedToRetrieveUpdatePackageInfo"


class UpdateStatus(StrEnum):
    """``updatecheck@status`` in a response. update_engine treats anything but
    ``ok`` and ``noupdate`` as error 34 (OMAHA_RESPONSE_INVALID)."""

    OK = "ok"
    NO_UPDATE = "noupdate"
    INTERNAL_ERROR = "error-internal"


# <ping status> and <event status> are always "ok" in go-omaha/Nebraska.
STATUS_OK = "ok"
