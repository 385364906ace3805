"""Exceptions of the update agent.

Every :class:`AgentError` carries ``error_code``: the update_engine
``ActionExitCode`` (see :class:`wellcar.omaha.ErrorCode`) that goes into an
``event 3/0 errorcode=…`` when the failure is reported to the server. Flag bits
(:class:`wellcar.omaha.ErrorFlag`) are *not* part of ``error_code``; they are
added when the report is sent, because they describe the sender (test server,
resumed attempt), not the failure.
"""

from __future__ import annotations

from wellcar.omaha import ErrorCode

__all__ = [
    "AgentError",
    "BadPayloadMagic",
    "ConfigError",
    "DownloadError",
    "InstallError",
    "InvalidTransition",
    "OmahaExchangeError",
    "OmahaHTTPError",
    "PayloadHashMismatch",
    "PayloadSizeMismatch",
    "ServerUnreachable",
    "SignatureError",
    "StateError",
    "TrustMetadataError",
    "UntrustedPayloadError",
    "UpdatesDisabledError",
    "VerificationError",
]


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""

    default_error_code: int = ErrorCode.ERROR

    def __init__(self, message: str, *, error_code: int | None = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.error_code: int = int(self.default_error_code if error_code is None else error_code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code})"


class ConfigError(AgentError):
    """An unusable update.conf / release file. ``path`` and ``line`` name the spot
    when there is one; the message already starts with ``path:line:``."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path: str | None = path
        self.line: int | None = line


class UpdatesDisabledError(ConfigError):
    """No usable ``SERVER`` (``SERVER=disabled``, unset or not a URL)."""


class StateError(AgentError):
    """The persisted status or the state machine refuses an operation."""


class InvalidTransition(StateError):
    """``trigger`` is not allowed in ``state`` (see :mod:`wellcar.agent.state`)."""

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(f"{trigger} is not allowed in state {state}")
        self.state: str = state
        self.trigger: str = trigger


class OmahaExchangeError(AgentError):
    """An Omaha request got no usable answer. The default code, 34
    (``OMAHA_RESPONSE_INVALID``), is what update_engine reports for any reply it
    cannot act on, including every throttling refusal of Nebraska."""

    default_error_code = ErrorCode.OMAHA_RESPONSE_INVALID

    def __init__(
        self, message: str, *, error_code: int | None = None, server_status: str | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        # app@status or updatecheck@status when the server refused in-band
        # (e.g. "error-maxUpdatesPerPeriodLimitReached"), for logs and metrics.
        self.server_status: str | None = server_status


class OmahaHTTPError(OmahaExchangeError):
    """The server answered with a non-2xx HTTP status: code 2000 + status."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(
            f"update server answered HTTP {status} for {url}",
            error_code=ErrorCode.OMAHA_REQUEST_HTTP_RESPONSE_BASE + status,
        )
        self.status: int = status
        self.url: str = url

    @property
    def is_server_error(self) -> bool:
        """5xx or 429: the server is overloaded or broken; the schedule backs off."""
        return self.status >= 500 or self.status == 429


class ServerUnreachable(OmahaExchangeError):
    """No HTTP answer at all (DNS, refused connection, timeout, connection
    dropped). update_engine reports this as ``OMAHA_REQUEST_ERROR`` (2); it is
    kept apart from the other exchange errors because the schedule backs off."""

    default_error_code = ErrorCode.OMAHA_REQUEST_ERROR


class DownloadError(AgentError):
    """The payload could not be fetched (every URL failed, or the disk refused
    the bytes). Transfer problems are 9 (``DOWNLOAD_TRANSFER_ERROR``); local
    write failures such as ENOSPC use 14 (``DOWNLOAD_WRITE_ERROR``)."""

    default_error_code = ErrorCode.DOWNLOAD_TRANSFER_ERROR


class TrustMetadataError(DownloadError):
    """Fresh, correctly signed TUF metadata could not be had (mirror unreachable,
    metadata expired, rolled back, badly signed or inconsistent). Reported as 9
    (``DOWNLOAD_TRANSFER_ERROR``) like any other failed fetch: nothing was installed,
    and the next check refreshes again (a stale mirror often recovers by itself)."""


class VerificationError(AgentError):
    """The payload's bytes are not the ones the server promised."""

    default_error_code = ErrorCode.DOWNLOAD_PAYLOAD_VERIFICATION_ERROR


class PayloadHashMismatch(VerificationError):
    default_error_code = ErrorCode.PAYLOAD_HASH_MISMATCH  # 10


class PayloadSizeMismatch(VerificationError):
    default_error_code = ErrorCode.PAYLOAD_SIZE_MISMATCH  # 11


class SignatureError(VerificationError):
    default_error_code = ErrorCode.SIGNATURE_VERIFICATION_FAILED  # 18


class UntrustedPayloadError(VerificationError):
    """The payload is not what the release keys signed in the TUF targets metadata: no
    such target, another board, older than the running version (12,
    ``DOWNLOAD_PAYLOAD_VERIFICATION_ERROR``), or another length (11) or hash (10)."""


class BadPayloadMagic(VerificationError):
    """Not a CrAU payload at all (e.g. a CDN's HTML error page with status 200)."""

    default_error_code = ErrorCode.BAD_MAGIC  # 21


class InstallError(AgentError):
    """Writing the payload into the inactive slot, or finalizing it, failed.
    Callers pass the specific code (e.g. 28 ``OPERATION_EXECUTION_ERROR``,
    5 ``POSTINSTALL_RUNNER_ERROR``); the default is the generic 1."""
