"""Rendering Omaha v3 messages to UTF-8 XML.

Rendering is plain string building: it is several times faster than building
an lxml tree and serializing it, and the shapes are fixed. Correctness rests on
:func:`escape_attr`, the only way a value reaches the output:

* ``& < > " '`` become entity references;
* TAB, LF and CR become character references, so attribute-value normalization
  on the reading side gives back the original characters (a literal newline in
  an attribute would be read back as a space);
* characters that XML 1.0 forbids (C0 controls other than TAB/LF/CR, lone
  surrogates, U+FFFE, U+FFFF) are replaced with U+FFFD, so the output is always
  well-formed and always encodable as UTF-8. Such characters never occur in
  real Omaha traffic; replacing instead of raising keeps one bad database value
  from turning every check-in into an HTTP 500.

Attributes whose model value is ``None`` are omitted; booleans are written
``true``/``false`` (Go ``encoding/xml``); empty lists omit their wrapper element
(``<urls>``, ``<packages>``, ``<actions>``), as go-omaha does.
"""

from __future__ import annotations

import re

from .model import (
    Action,
    AppRequest,
    AppResponse,
    Manifest,
    Request,
    Response,
    UpdateCheckResponse,
)

__all__ = ["escape_attr", "render_request", "render_response"]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

_ILLEGAL_XML_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_NEEDS_ESCAPE = re.compile(f"[&<>\"'\t\n\r{_ILLEGAL_XML_CHARS}]")
_ESCAPES: dict[int, str] = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&apos;",
    ord("\t"): "&#9;",
    ord("\n"): "&#10;",
    ord("\r"): "&#13;",
}
for _cp in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0xD800, 0xE000)]:
    _ESCAPES[_cp] = "\ufffd"
_ESCAPES[0xFFFE] = "\ufffd"
_ESCAPES[0xFFFF] = "\ufffd"
del _cp


def escape_attr(value: str) -> str:
    """Escape ``value`` for use inside a double-quoted XML attribute."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value  # fast path: versions, UUIDs, base64, URLs
    return value.translate(_ESCAPES)


def _s(name: str, value: str | None) -> str:
    if value is None:
        return ""
    return f' {name}="{escape_attr(value)}"'


def _i(name: str, value: int | None) -> str:
    if value is None:
        return ""
    return f' {name}="{int(value)}"'  # int(): IntEnum/bool render as digits


def _b(name: str, value: bool | None) -> str:
    if value is None:
        return ""
    return f' {name}="true"' if value else f' {name}="false"'


# --- request -------------------------------------------------------------------


def render_request(req: Request) -> bytes:
    """Render a request the way update_engine writes it (UTF-8, with declaration)."""
    parts = [
        XML_DECLARATION,
        "<request",
        _s("protocol", req.protocol),
        _s("version", req.version),
        _s("updaterversion", req.updaterversion),
        _s("installsource", req.installsource),
        _i("ismachine", req.ismachine),
        _s("requestid", req.requestid),
        _s("sessionid", req.sessionid),
        ">",
    ]
    os_ = req.os
    if os_ is not None:
        parts.append(
            "<os"
            + _s("platform", os_.platform)
            + _s("version", os_.version)
            + _s("sp", os_.sp)
            + _s("arch", os_.arch)
            + "/>"
        )
    for app in req.apps:
        _render_app_request(app, parts)
    parts.append("</request>")
    return "".join(parts).encode("utf-8")


def _render_app_request(app: AppRequest, parts: list[str]) -> None:
    parts.append(
        "<app"
        + _s("appid", app.appid)
        + _s("version", app.version)
        + _s("track", app.track)
        + _s("bootid", app.bootid)
        + _s("machineid", app.machineid)
        + _s("machinealias", app.machinealias)
        + _s("oem", app.oem)
        + _s("oemversion", app.oemversion)
        + _s("alephversion", app.alephversion)
        + _s("lang", app.lang)
        + _s("board", app.board)
        + _s("hardware_class", app.hardware_class)
        + _b("delta_okay", app.delta_okay)
        + _b("multi_manifest_ok", app.multi_manifest_ok)
        + ">"
    )
    ping = app.ping
    if ping is not None:
        parts.append("<ping" + _i("active", ping.active) + _i("r", ping.r) + _i("a", ping.a) + "/>")
    uc = app.updatecheck
    if uc is not None:
        parts.append("<updatecheck" + _s("targetversionprefix", uc.targetversionprefix) + "/>")
    for ev in app.events:
        parts.append(
            "<event"
            + _i("eventtype", ev.eventtype)
            + _i("eventresult", ev.eventresult)
            + _i("errorcode", ev.errorcode)
            + _s("previousversion", ev.previousversion)
            + _s("nextversion", ev.nextversion)
            + "/>"
        )
    parts.append("</app>")


# --- response ------------------------------------------------------------------


def render_response(resp: Response) -> bytes:
    """Render a response the way Nebraska (go-omaha) writes it, plus the XML
    declaration (UTF-8)."""
    parts = [
        XML_DECLARATION,
        "<response",
        _s("protocol", resp.protocol),
        _s("server", resp.server),
        ">",
    ]
    if resp.daystart_elapsed_seconds is not None:
        parts.append(f'<daystart elapsed_seconds="{int(resp.daystart_elapsed_seconds)}"/>')
    for app in resp.apps:
        _render_app_response(app, parts)
    parts.append("</response>")
    return "".join(parts).encode("utf-8")


def _render_app_response(app: AppResponse, parts: list[str]) -> None:
    parts.append("<app" + _s("appid", app.appid) + _s("status", app.status) + ">")
    for status in app.event_statuses:
        parts.append("<event" + _s("status", status) + "/>")
    if app.ping_status is not None:
        parts.append("<ping" + _s("status", app.ping_status) + "/>")
    if app.updatecheck is not None:
        _render_updatecheck(app.updatecheck, parts)
    parts.append("</app>")


def _render_updatecheck(uc: UpdateCheckResponse, parts: list[str]) -> None:
    head = "<updatecheck" + _s("status", uc.status) + _i("PollInterval", uc.poll_interval)
    if not uc.urls and not uc.manifests:
        parts.append(head + "/>")
        return
    parts.append(head + ">")
    if uc.urls:
        parts.append("<urls>")
        for url in uc.urls:
            parts.append("<url" + _s("codebase", url) + "/>")
        parts.append("</urls>")
    for manifest in uc.manifests:
        _render_manifest(manifest, parts)
    parts.append("</updatecheck>")


def _render_manifest(m: Manifest, parts: list[str]) -> None:
    parts.append(
        "<manifest"
        + _s("version", m.version)
        + _b("is_floor", m.is_floor)
        + _s("floor_reason", m.floor_reason)
        + _b("is_target", m.is_target)
        + ">"
    )
    if m.packages:
        parts.append("<packages>")
        for p in m.packages:
            parts.append(
                "<package"
                + _s("name", p.name)
                + _s("hash", p.hash)
                + _s("hash_sha256", p.hash_sha256)
                + _i("size", p.size)
                + _b("required", p.required)
                + "/>"
            )
        parts.append("</packages>")
    if m.actions:
        parts.append("<actions>")
        for a in m.actions:
            parts.append(_render_action(a))
        parts.append("</actions>")
    parts.append("</manifest>")


def _render_action(a: Action) -> str:
    return (
        "<action"
        + _s("event", a.event)
        + _s("sha256", a.sha256)
        + _s("DisplayVersion", a.display_version)
        + _b("IsDeltaPayload", a.is_delta_payload)
        + _b("DisablePayloadBackoff", a.disable_payload_backoff)
        + _i("MaxFailureCountPerUrl", a.max_failure_count_per_url)
        + _s("MetadataSignatureRsa", a.metadata_signature_rsa)
        + _s("MetadataSize", a.metadata_size)
        + _b("needsadmin", a.needsadmin)
        + _s("deadline", a.deadline)
        + "/>"
    )
