"""Client of the FleetLock protocol (Zincati's reboot coordination, airlock's server).

Two calls, both ``POST`` with the header ``fleet-lock-protocol: true`` and the body
``{"client_params": {"id": <node id>, "group": <group>}}``:

- ``{base}/v1/pre-reboot``: take one of the group's reboot slots (recursive: a node that
  holds one may ask again);
- ``{base}/v1/steady-state``: give it back once the node is up again.

200 means yes. Anything else is a refusal or an error, described by the server as
``{"kind": ..., "value": ...}``; 409 is the usual "all slots are taken". Redirects are
followed only to the same scheme, host and port, and only with 307/308 (which keep the
method and body): a lock request must not wander to another host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from types import TracebackType
from uuid import UUID

import httpx

PROTOCOL_HEADER = "fleet-lock-protocol"
PRE_REBOOT_PATH = "v1/pre-reboot"
STEADY_STATE_PATH = "v1/steady-state"
DEFAULT_GROUP = "default"
# Zincati's application id for the FleetLock node id (an app-specific machine id): a node
# moving over from Fedora CoreOS keeps the identity under which it may hold a lock.
ZINCATI_APP_ID = UUID("de35106b-6ec2-4688-b63a-fddaa156679b")

_GROUP = re.compile(r"[a-zA-Z0-9.-]+")
_MAX_ERROR_BODY = 64 * 1024
_MAX_REDIRECTS = 3


# ------------------------------------------------------------------------------ errors


class FleetLockError(Exception):
    """The lock was not granted or released, for whatever reason."""


class FleetLockConfigError(FleetLockError, ValueError):
    """Bad base URL, node id or group."""


class FleetLockUnavailableError(FleetLockError):
    """The server could not be reached, timed out, or redirected somewhere not allowed."""


class FleetLockRefusedError(FleetLockError):
    """The server answered with something other than 200 (409: no free slot)."""

    def __init__(self, status: int, kind: str | None, value: str | None, operation: str) -> None:
        detail = f"{kind}: {value}" if kind else (value or "no explanation")
        super().__init__(f"FleetLock {operation} refused with HTTP {status} ({detail})")
        self.status = status
        self.kind = kind
        self.value = value

    @property
    def lock_held_elsewhere(self) -> bool:
        return self.status == 409


# -------------------------------------------------------------------------- identity


def app_specific_machine_id(machine_id: str, app_id: UUID = ZINCATI_APP_ID) -> str:
    """systemd's ``sd_id128_get_machine_app_specific``: a stable id that does not reveal
    the machine id (HMAC-SHA256 keyed with it, cut to 128 bits, marked UUID v4)."""
    try:
        key = bytes.fromhex(machine_id.strip())
    except ValueError as exc:
        raise FleetLockConfigError(f"machine id {machine_id[:40]!r} is not hexadecimal") from exc
    if len(key) != 16:
        raise FleetLockConfigError("a machine id has 32 hex digits")
    digest = bytearray(hmac.new(key, app_id.bytes, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


# ---------------------------------------------------------------------------- client


@dataclass(frozen=True)
class FleetLockParams:
    node_id: str
    group: str = DEFAULT_GROUP

    def __post_init__(self) -> None:
        if not self.node_id or len(self.node_id) > 256 or not self.node_id.isprintable():
            raise FleetLockConfigError("the FleetLock node id must be 1..256 printable characters")
        if not _GROUP.fullmatch(self.group):
            raise FleetLockConfigError(
                f"FleetLock group {self.group[:40]!r} may only hold letters, digits, '.', '-'"
            )

    def body(self) -> bytes:
        document = {"client_params": {"id": self.node_id, "group": self.group}}
        return json.dumps(document).encode()


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class FleetLockClient:
    """Takes and releases this node's FleetLock slot at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        node_id: str,
        group: str = DEFAULT_GROUP,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            base = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise FleetLockConfigError(f"FleetLock URL {base_url[:80]!r}: {exc}") from exc
        if base.scheme not in ("http", "https") or not base.host:
            raise FleetLockConfigError(f"FleetLock URL {base_url[:80]!r} is not http(s)://host")
        self._base = base.copy_with(path=base.path.rstrip("/") + "/")
        self.params = FleetLockParams(node_id, group)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
            headers={PROTOCOL_HEADER: "true", "content-type": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FleetLockClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def url(self, path: str) -> httpx.URL:
        return self._base.join(path)

    def pre_reboot(self) -> None:
        """Take a reboot slot; FleetLockRefusedError (409) when none is free."""
        self._post(PRE_REBOOT_PATH, "pre-reboot")

    def steady_state(self) -> None:
        """Give the slot back (a node that holds none gets 200 as well)."""
        self._post(STEADY_STATE_PATH, "steady-state")

    def _post(self, path: str, operation: str) -> None:
        url = self.url(path)
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                with self._client.stream("POST", url, content=self.params.body()) as response:
                    if response.status_code in (307, 308):
                        url = self._redirect_target(url, response, operation)
                        continue
                    if response.status_code == 200:
                        return
                    kind, value = _error_message(self._read_limited(response))
                    raise FleetLockRefusedError(response.status_code, kind, value, operation)
            except httpx.TimeoutException as exc:
                raise FleetLockUnavailableError(
                    f"FleetLock {operation} at {url} timed out"
                ) from exc
            except httpx.HTTPError as exc:
                raise FleetLockUnavailableError(
                    f"FleetLock {operation} at {url} failed: {exc}"
                ) from exc
        raise FleetLockUnavailableError(
            f"FleetLock {operation}: more than {_MAX_REDIRECTS} redirects"
        )

    def _redirect_target(
        self, url: httpx.URL, response: httpx.Response, operation: str
    ) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise FleetLockUnavailableError(f"FleetLock {operation}: redirect without a Location")
        target = url.join(location)
        if not _same_origin(url, target):
            raise FleetLockUnavailableError(
                f"FleetLock {operation}: refusing the redirect from {url} to another host "
                f"({target.scheme}://{target.host}:{target.port or ''})"
            )
        return target

    @staticmethod
    def _read_limited(response: httpx.Response) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _MAX_ERROR_BODY:
                break
        return bytes(body[:_MAX_ERROR_BODY])


def _error_message(body: bytes) -> tuple[str | None, str | None]:
    """The server's ``{"kind", "value"}``; the start of the body when it sent something else."""
    try:
        document = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", errors="replace").strip()
        return None, text[:200] or None
    if not isinstance(document, dict):
        return None, str(document)[:200]
    kind, value = document.get("kind"), document.get("value")
    return (
        str(kind)[:100] if kind is not None else None,
        str(value)[:500] if value is not None else None,
    )
