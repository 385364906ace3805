"""Omaha v3 messages as typed objects.

Field names follow the XML attribute they carry (documented per field where the
XML name differs). Optional attributes are ``None`` when absent, so that a parsed
message renders back to the same attributes (round trip).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLATCAR_APP_ID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
PROTOCOL_VERSION = "3.0"


# --- request -----------------------------------------------------------------


@dataclass(slots=True)
class OS:
    platform: str | None = None
    version: str | None = None
    sp: str | None = None  # "service pack": update_engine puts "<version>_<uname -m>" here
    arch: str | None = None


@dataclass(slots=True)
class Ping:
    active: int | None = None
    r: int | None = None  # days since last report
    a: int | None = None  # days since last active report


@dataclass(slots=True)
class UpdateCheck:
    targetversionprefix: str | None = None


@dataclass(slots=True)
class Event:
    eventtype: int
    eventresult: int
    errorcode: int | None = None
    previousversion: str | None = None
    nextversion: str | None = None


@dataclass(slots=True)
class AppRequest:
    appid: str
    version: str | None = None
    track: str | None = None
    bootid: str | None = None
    machineid: str | None = None
    machinealias: str | None = None
    oem: str | None = None
    oemversion: str | None = None
    alephversion: str | None = None
    lang: str | None = None
    board: str | None = None
    hardware_class: str | None = None
    delta_okay: bool | None = None
    multi_manifest_ok: bool | None = None
    ping: Ping | None = None
    updatecheck: UpdateCheck | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class Request:
    protocol: str = PROTOCOL_VERSION
    version: str | None = None  # the updater's version, e.g. "update_engine-0.4.10"
    updaterversion: str | None = None
    installsource: str | None = None
    ismachine: int | None = None
    requestid: str | None = None
    sessionid: str | None = None
    os: OS | None = None
    apps: list[AppRequest] = field(default_factory=list)


UPDATE_ENGINE_VERSION = "update_engine-0.4.10"  # what Flatcar's update_engine sends


def update_engine_request(
    app: AppRequest, *, running: str, updater: str = UPDATE_ENGINE_VERSION
) -> Request:
    """``app`` wrapped as Flatcar's update_engine sends it: a scheduled, machine-wide
    request from "CoreOS Chateau" with the running version and arch as service pack."""
    return Request(
        version=updater,
        updaterversion=updater,
        installsource="scheduler",
        ismachine=1,
        os=OS(platform="CoreOS", version="Chateau", sp=f"{running}_x86_64"),
        apps=[app],
    )


# --- response ----------------------------------------------------------------


@dataclass(slots=True)
class Package:
    name: str
    size: int = 0
    hash: str | None = None  # base64 SHA-1, ignored by update_engine
    hash_sha256: str | None = None
    required: bool = True


@dataclass(slots=True)
class Action:
    event: str = "postinstall"
    sha256: str | None = None  # XML "sha256": base64 SHA-256 of the whole payload
    display_version: str | None = None  # XML "DisplayVersion"
    is_delta_payload: bool | None = None  # XML "IsDeltaPayload"
    disable_payload_backoff: bool | None = None  # XML "DisablePayloadBackoff"
    max_failure_count_per_url: int | None = None  # XML "MaxFailureCountPerUrl"
    metadata_signature_rsa: str | None = None  # XML "MetadataSignatureRsa"
    metadata_size: str | None = None  # XML "MetadataSize"
    needsadmin: bool | None = None
    deadline: str | None = None


@dataclass(slots=True)
class Manifest:
    version: str
    packages: list[Package] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    is_floor: bool | None = None
    floor_reason: str | None = None
    is_target: bool | None = None


@dataclass(slots=True)
class UpdateCheckResponse:
    status: str  # "ok", "noupdate" or "error-*"
    urls: list[str] = field(default_factory=list)  # each url@codebase
    manifests: list[Manifest] = field(default_factory=list)
    poll_interval: int | None = None  # XML "PollInterval", seconds


@dataclass(slots=True)
class AppResponse:
    appid: str
    status: str = "ok"
    ping_status: str | None = None  # <ping status="ok"/> when the request had a ping
    event_statuses: list[str] = field(default_factory=list)  # one <event status="ok"/> per event
    updatecheck: UpdateCheckResponse | None = None


@dataclass(slots=True)
class Response:
    protocol: str = PROTOCOL_VERSION
    server: str = "wellcar"
    daystart_elapsed_seconds: int | None = 0
    apps: list[AppResponse] = field(default_factory=list)
