"""The Omaha client side: requests as update_engine builds them, answers turned
into a small typed result.

Messages are built and parsed with :mod:`wellcar.omaha`. Three kinds of request,
as update_engine sends them (docs/omaha.md):

* update check: ``<ping active="1"/>`` + ``<updatecheck/>`` + always one event:
  3/2 with ``previousversion`` = the old version on the first check after an
  update reboot, ``0.0.0.0`` on the very first check, empty otherwise -- or,
  after a rollback, 3/0 with errorcode 44 instead;
* event-only (13/1 download started, 14/1 finished, 3/1 installed, 3/0 failed);
* ping-only, while waiting for a reboot (keeps the server's active counts right).

Everything the server says is treated as hostile until checked: the body is
read streaming and capped, redirects are capped and may not downgrade https to
http, and an answer the agent cannot act on is an :class:`OmahaExchangeError`
with update_engine's error code 34.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from urllib.parse import urlsplit

import httpx

from wellcar import __version__
from wellcar.netfetch import (
    MAX_REDIRECTS,
    Deadline,
    FetchDeadlineError,
    FetchEncodedError,
    FetchTooLargeError,
    RedirectRefused,
    read_capped,
    send_following_redirects,
)
from wellcar.omaha import (
    OS,
    AppRequest,
    AppResponse,
    ErrorCode,
    ErrorFlag,
    Event,
    EventResult,
    EventType,
    Manifest,
    OmahaParseError,
    Ping,
    Request,
    Response,
    UpdateCheck,
    parse_response,
    render_request,
)

from .config import AgentConfig
from .errors import (
    OmahaExchangeError,
    OmahaHTTPError,
    ServerUnreachable,
    UpdatesDisabledError,
)
from .node_identity import NodeIdentity
from .semver import is_newer_version, semver_sort_key
from .status_store import AgentStatus

__all__ = [
    "DEFAULT_MAX_FAILURES_PER_URL",
    "FIRST_CHECK_PREVIOUS_VERSION",
    "MAX_RESPONSE_BYTES",
    "UPDATER_VERSION",
    "CheckResult",
    "InstallSource",
    "NoUpdate",
    "OmahaClient",
    "UpdateOffer",
    "check_event",
    "interpret_update_check",
]

UPDATER_VERSION = f"wellcar-agent-{__version__}"
# update_engine's <os> values. They are protocol constants that servers key on,
# not a brand, so they stay as Flatcar sends them.
OS_PLATFORM = "CoreOS"
OS_VERSION = "Chateau"
FIRST_CHECK_PREVIOUS_VERSION = "0.0.0.0"
MAX_RESPONSE_BYTES = 1024 * 1024
EXCHANGE_DEADLINE_FACTOR = 2  # an exchange may take twice HTTP_TIMEOUT, in all
DEFAULT_MAX_FAILURES_PER_URL = 10  # update_engine's default for MaxFailureCountPerUrl
_INVALID = ErrorCode.OMAHA_RESPONSE_INVALID


class InstallSource(StrEnum):
    SCHEDULER = "scheduler"
    ON_DEMAND = "ondemandupdate"  # update_engine_client -check_for_update


@dataclass(frozen=True, slots=True)
class NoUpdate:
    poll_interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class UpdateOffer:
    version: str
    urls: tuple[str, ...]  # each codebase + package name, to be tried in order
    size: int
    sha256_b64: str  # the postinstall action's sha256: base64 SHA-256 of the whole payload
    package_name: str
    is_delta: bool = False
    disable_backoff: bool = False
    max_failures_per_url: int = DEFAULT_MAX_FAILURES_PER_URL
    poll_interval: timedelta | None = None
    # The whole reply, for update_engine's prefs/full-response (postinstall hooks
    # read extra packages from it).
    response_body: bytes = field(default=b"", repr=False, compare=False)

    @property
    def sha256_hex(self) -> str:
        return base64.b64decode(self.sha256_b64).hex()


CheckResult = NoUpdate | UpdateOffer


# --- interpreting an update check ----------------------------------------------------


def _norm_appid(appid: str) -> str:
    return appid.strip().strip("{}").lower()


def _invalid(message: str, server_status: str | None = None) -> OmahaExchangeError:
    return OmahaExchangeError(message, error_code=_INVALID, server_status=server_status)


def _find_app(response: Response, app_id: str) -> AppResponse:
    wanted = _norm_appid(app_id)
    for app in response.apps:
        if _norm_appid(app.appid) == wanted:
            return app
    raise _invalid(f"the response has no <app> for {app_id}")


def _pick_manifest(manifests: list[Manifest]) -> Manifest:
    # Without multi_manifest_ok (never sent) there is one manifest; should a
    # server send floors anyway, the target is the one to install.
    targets = [m for m in manifests if m.is_target]
    return targets[-1] if targets else manifests[-1]


def _package_url(codebase: str, name: str) -> str:
    parts = urlsplit(codebase)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(f"URL codebase {codebase[:200]!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise _invalid(f"URL codebase {codebase[:200]!r} has a query or fragment")
    # update_engine appends the name to the codebase; Nebraska's codebases end in
    # "/", and one that does not is read as a directory all the same.
    return codebase + name if codebase.endswith("/") else codebase + "/" + name


def interpret_update_check(
    response: Response, *, app_id: str, running_version: str, body: bytes = b""
) -> CheckResult:
    """What an update-check reply means, as update_engine reads it, plus the
    checks update_engine lacks (size > 0, sha256 well-formed, version newer)."""
    app = _find_app(response, app_id)
    if app.status != "ok":
        raise _invalid(f"the server refused the app: status {app.status[:80]!r}", app.status)
    uc = app.updatecheck
    if uc is None:
        raise _invalid("the response has no <updatecheck>")
    poll: timedelta | None = None
    if uc.poll_interval is not None and uc.poll_interval > 0:
        poll = timedelta(seconds=min(uc.poll_interval, 366 * 86400))
    if uc.status == "noupdate":
        return NoUpdate(poll_interval=poll)
    if uc.status != "ok":
        # Nebraska's throttling and errors all end here, as error 34 (like update_engine).
        raise _invalid(f"update check status {uc.status[:80]!r}", uc.status)
    if not uc.manifests:
        raise _invalid("update offered without a <manifest>")
    manifest = _pick_manifest(uc.manifests)
    if not manifest.packages:
        raise _invalid("update offered without a <package>")
    package = manifest.packages[0]
    name = package.name
    if not name or "/" in name or "\\" in name or name in (".", "..") or "?" in name:
        raise _invalid(f"package name {name[:80]!r} is not a plain file name")
    if package.size <= 0:
        raise _invalid(f"package size {package.size} is not positive")
    actions = [a for a in manifest.actions if a.event == "postinstall"]
    if not actions or not actions[0].sha256:
        raise _invalid("no postinstall action with a sha256")
    action = actions[0]
    sha256_b64 = (action.sha256 or "").strip()
    try:
        digest = base64.b64decode(sha256_b64, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise _invalid(f"postinstall sha256 {sha256_b64[:64]!r} is not a base64 SHA-256")
    version = manifest.version
    if semver_sort_key(version) is None:
        raise _invalid(f"offered version {version[:40]!r} is not a semantic version")
    if not is_newer_version(version, running_version):
        # Never downgrade (nor reinstall) on a server's word: a compromised or
        # misconfigured server must not walk nodes back to a vulnerable release.
        raise _invalid(f"offered version {version} is not newer than the running {running_version}")
    if not uc.urls:
        raise _invalid("update offered without <urls>")
    urls = tuple(dict.fromkeys(_package_url(c, name) for c in uc.urls))
    max_failures = action.max_failure_count_per_url or DEFAULT_MAX_FAILURES_PER_URL
    return UpdateOffer(
        version=version,
        urls=urls,
        size=package.size,
        sha256_b64=sha256_b64,
        package_name=name,
        is_delta=bool(action.is_delta_payload),
        disable_backoff=bool(action.disable_payload_backoff),
        max_failures_per_url=max_failures,
        poll_interval=poll,
        response_body=body,
    )


# --- requests --------------------------------------------------------------------------


def check_event(status: AgentStatus, running_version: str) -> Event:
    """The event an update check carries (see module docstring)."""
    previous = status.previous_version
    if previous is not None and previous == running_version:
        return Event(EventType.UPDATE_COMPLETE, EventResult.ERROR, errorcode=ErrorCode.ROLLBACK)
    if previous is not None:
        return Event(
            EventType.UPDATE_COMPLETE, EventResult.SUCCESS_REBOOT, previousversion=previous
        )
    if not status.has_checked_in:
        return Event(
            EventType.UPDATE_COMPLETE,
            EventResult.SUCCESS_REBOOT,
            previousversion=FIRST_CHECK_PREVIOUS_VERSION,
        )
    return Event(EventType.UPDATE_COMPLETE, EventResult.SUCCESS_REBOOT, previousversion="")


class OmahaClient:
    """Talks Omaha to ``config.server`` for the node ``identity``.

    Stateless between calls: what it sends depends on the :class:`AgentStatus`
    passed in, so the daemon stays the only owner of the persisted status.
    """

    def __init__(
        self,
        config: AgentConfig,
        identity: NodeIdentity,
        http: httpx.Client,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        if config.server is None:
            raise UpdatesDisabledError("updates are disabled: no usable SERVER")
        self.config = config
        self.identity = identity
        self.http = http
        self.server: str = config.server
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects

    # -- building ---------------------------------------------------------------------

    def build_request(
        self,
        status: AgentStatus,
        *,
        events: list[Event] | None = None,
        ping: bool = False,
        updatecheck: bool = False,
        install_source: InstallSource = InstallSource.SCHEDULER,
    ) -> Request:
        ident, cfg = self.identity, self.config
        app = AppRequest(
            appid=cfg.app_id,
            version=ident.version,
            track=cfg.group,
            bootid=f"{{{ident.boot_id}}}",
            machineid=ident.machine_id,
            # update_engine sends these even when empty.
            machinealias=cfg.machine_alias or "",
            oem=ident.oem_id,
            oemversion=ident.oem_version,
            alephversion=status.aleph_version or ident.version,
            lang="en-US",
            board=ident.board,
            hardware_class="",
            delta_okay=cfg.delta_okay,
            ping=Ping(active=1) if ping else None,
            updatecheck=UpdateCheck() if updatecheck else None,
            events=list(events or []),
        )
        return Request(
            version=UPDATER_VERSION,
            updaterversion=UPDATER_VERSION,
            installsource=str(install_source),
            ismachine=1,
            os=OS(platform=OS_PLATFORM, version=OS_VERSION, sp=f"{ident.version}_{ident.arch}"),
            apps=[app],
        )

    def check_request(
        self, status: AgentStatus, install_source: InstallSource = InstallSource.SCHEDULER
    ) -> Request:
        event = check_event(status, self.identity.version)
        return self.build_request(
            status, events=[event], ping=True, updatecheck=True, install_source=install_source
        )

    def error_code_with_flags(self, error_code: int, *, resumed: bool = False) -> int:
        """``error_code`` with update_engine's context flags OR'd in."""
        code = int(error_code)
        if not self.config.is_production_server:
            code |= ErrorFlag.TEST_OMAHA_URL
        if resumed:
            code |= ErrorFlag.RESUMED
        return code

    # -- exchanging ---------------------------------------------------------------------

    def exchange(self, request: Request) -> tuple[Response, bytes]:
        """POST ``request``; the parsed response and its raw body.

        Raises ServerUnreachable (no HTTP answer), OmahaHTTPError (non-2xx,
        code 2000 + status) or OmahaExchangeError 34 (anything else unusable).
        """
        headers = {
            "Content-Type": "text/xml",
            "Accept": "text/xml, application/xml",
            # The XML is small; a compressed reply is only a way to hide its size.
            "Accept-Encoding": "identity",
            "User-Agent": UPDATER_VERSION,
        }
        timeout = self.config.http_timeout.total_seconds()
        # The whole exchange, redirects and a dripping body included, ends in time: a
        # check that hangs would hold the agent's loop (no checks, reboots or reports).
        deadline = Deadline(EXCHANGE_DEADLINE_FACTOR * timeout, f"update check at {self.server}")
        try:
            with deadline:
                response = send_following_redirects(
                    self.http,
                    "POST",
                    self.server,
                    headers=headers,
                    content=render_request(request),
                    timeout=timeout,
                    max_redirects=self.max_redirects,
                    deadline=deadline,
                )
                with contextlib.closing(response):
                    final_url = str(response.request.url)
                    if not 200 <= response.status_code < 300:
                        raise OmahaHTTPError(response.status_code, final_url)
                    try:
                        body = read_capped(response, self.max_response_bytes, deadline)
                    except (FetchTooLargeError, FetchEncodedError) as exc:
                        raise _invalid(f"response from {final_url}: {exc}") from None
                    except httpx.HTTPError as exc:
                        raise ServerUnreachable(
                            f"response from {final_url} broke off: {exc}"
                        ) from None
                    content_type = response.headers.get("content-type")
        except RedirectRefused as exc:
            raise _invalid(str(exc)) from None
        except FetchDeadlineError as exc:
            raise ServerUnreachable(str(exc)) from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"update server {self.server} unreachable: {exc}") from None
        try:
            parsed = parse_response(body, content_type)
        except OmahaParseError as exc:
            raise _invalid(f"invalid Omaha response ({exc.reason}): {exc.message}") from None
        return parsed, body

    def check_for_update(
        self, status: AgentStatus, *, install_source: InstallSource = InstallSource.SCHEDULER
    ) -> CheckResult:
        """One update check. The caller records success with
        ``status.checked_in(now)`` (that clears the previous-version report)."""
        response, body = self.exchange(self.check_request(status, install_source))
        return interpret_update_check(
            response, app_id=self.config.app_id, running_version=self.identity.version, body=body
        )

    def ping(self, status: AgentStatus) -> None:
        """Ping-only request (while UPDATED_NEED_REBOOT)."""
        self.exchange(self.build_request(status, ping=True))

    def send_event(
        self,
        status: AgentStatus,
        event: Event,
        *,
        install_source: InstallSource = InstallSource.SCHEDULER,
    ) -> None:
        """Event-only request. The reply only has to be a valid Omaha response:
        update_engine does not look at event acknowledgements either."""
        self.exchange(self.build_request(status, events=[event], install_source=install_source))

    def report_download_started(self, status: AgentStatus) -> None:
        self.send_event(status, Event(EventType.DOWNLOAD_STARTED, EventResult.SUCCESS))

    def report_download_finished(self, status: AgentStatus) -> None:
        self.send_event(status, Event(EventType.DOWNLOAD_FINISHED, EventResult.SUCCESS))

    def report_installed(self, status: AgentStatus) -> None:
        self.send_event(status, Event(EventType.UPDATE_COMPLETE, EventResult.SUCCESS))

    def report_error(self, status: AgentStatus, error_code: int, *, resumed: bool = False) -> int:
        """Send 3/0 with ``error_code`` and the context flags; returns the code sent."""
        code = self.error_code_with_flags(error_code, resumed=resumed)
        self.send_event(status, Event(EventType.UPDATE_COMPLETE, EventResult.ERROR, errorcode=code))
        return code
