"""Hardened parsing of Omaha v3 requests and responses.

Order of checks (cheapest first, so that hostile bodies cost as little as
possible): size, content type, empty body, XML declaration encoding, a byte scan
for ``<!ENTITY`` / ``<!DOCTYPE``, then libxml2 (via lxml) with every dangerous
feature off and the input encoding forced to UTF-8, then element count and
depth, then the Omaha structure.

Why a byte scan for DTDs is complete: the parser is forced to UTF-8 (so a
UTF-16 body cannot hide ``<!DOCTYPE`` from the scan), and a DOCTYPE cannot be
produced by character references. It may reject a document that merely mentions
``<!DOCTYPE`` inside a comment or CDATA section; no Omaha client sends either.

Leniency follows update_engine and Nebraska (Go ``encoding/xml``): unknown
attributes and elements are ignored, the first ``<os>``/``<ping>``/
``<updatecheck>`` wins, integers and booleans may carry surrounding whitespace,
and an empty integer/boolean attribute counts as absent. Known integer and
boolean attributes with any other malformed value are errors naming the
attribute. Namespaced elements are not recognised (no Omaha client uses them).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from .errors import (
    BodyTooLargeError,
    ContentTypeError,
    EncodingError,
    ForbiddenDTDError,
    ForbiddenEntityError,
    LimitExceededError,
    MalformedXMLError,
    OmahaParseError,
    Reason,
    SchemaError,
)
from .model import (
    OS,
    PROTOCOL_VERSION,
    Action,
    AppRequest,
    AppResponse,
    Event,
    Manifest,
    Package,
    Ping,
    Request,
    Response,
    UpdateCheck,
    UpdateCheckResponse,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RESPONSE_LIMITS",
    "ParseLimits",
    "parse_request",
    "parse_response",
]

# libxml2 refuses documents deeper than 256 elements unless XML_PARSE_HUGE.
_LIBXML2_MAX_DEPTH = 256

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Upper bounds on what a parse will accept. Defaults fit requests: a real
    update_engine request is under 2 KiB, 6 elements, depth 3."""

    max_body_bytes: int = 64 * 1024
    max_depth: int = 8  # the root element is depth 1
    max_elements: int = 256
    max_apps: int = 8
    max_events_per_app: int = 8
    max_attribute_length: int = 2048  # characters, checked on every attribute the codec reads

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_depth",
            "max_elements",
            "max_apps",
            "max_events_per_app",
            "max_attribute_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ParseLimits.{name} must be >= 1")
        if self.max_depth >= _LIBXML2_MAX_DEPTH:
            raise ValueError(f"ParseLimits.max_depth must be < {_LIBXML2_MAX_DEPTH}")


DEFAULT_LIMITS = ParseLimits()
# Responses are produced by a server we chose to talk to and may carry several
# manifests (floors) with several packages each (OEM and sysext payloads), and
# long URLs and signatures: allow more, still bounded.
DEFAULT_RESPONSE_LIMITS = ParseLimits(
    max_body_bytes=1024 * 1024,
    max_elements=4096,
    max_attribute_length=16 * 1024,
)


# --- envelope ------------------------------------------------------------------

_ACCEPTED_MEDIA_TYPES = frozenset({"text/xml", "application/xml"})
# Go's encoding/xml (Nebraska) accepts only UTF-8; "utf8" is libxml2's alias.
_ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8"})
_UTF8_BOM = b"\xef\xbb\xbf"
_XML_DECL_ENCODING = re.compile(rb"""\sencoding\s*=\s*(["'])(.*?)\1""", re.DOTALL)


def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        return
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if not media_type and not params.strip():
        return  # blank header: go-omaha assumes XML in UTF-8 too
    if media_type not in _ACCEPTED_MEDIA_TYPES:
        raise ContentTypeError(
            Reason.BAD_CONTENT_TYPE,
            f"content type {media_type[:64]!r} is not text/xml or application/xml",
        )
    for param in params.split(";"):
        key, sep, value = param.partition("=")
        if not sep or key.strip().lower() != "charset":
            continue
        charset = value.strip().strip('"').strip().lower()
        if charset not in _ACCEPTED_CHARSETS:
            raise EncodingError(
                Reason.BAD_ENCODING,
                f"content type charset {charset[:32]!r} is not UTF-8",
            )


def _check_encoding(body: bytes) -> None:
    # UTF-16/32 (with or without BOM) start with a NUL or a 0xFE/0xFF byte in
    # the first two bytes, neither of which can start a UTF-8 XML document.
    # Refusing them here gives a clearer reason than libxml2's "not XML".
    if body[0] in (0x00, 0xFE, 0xFF) or body[1:2] == b"\x00":
        raise EncodingError(
            Reason.BAD_ENCODING, "body looks like UTF-16/32; only UTF-8 is accepted"
        )
    start = 3 if body.startswith(_UTF8_BOM) else 0
    if not body.startswith(b"<?xml", start):
        return
    end = body.find(b"?>", start)
    if end < 0:
        return  # libxml2 reports the malformed declaration
    m = _XML_DECL_ENCODING.search(body, start, end)
    if m is not None and m.group(2).strip().lower() not in (b"utf-8", b"utf8"):
        declared = m.group(2)[:32].decode("ascii", "replace")
        raise EncodingError(
            Reason.BAD_ENCODING,
            f"XML declaration says encoding {declared!r}; only UTF-8 is accepted",
        )


def _check_forbidden_markup(body: bytes) -> None:
    if b"<!" not in body:  # the usual case: one scan, then done
        return
    if b"<!ENTITY" in body:
        raise ForbiddenEntityError(
            Reason.FORBIDDEN_ENTITY,
            "entity declarations (<!ENTITY) are not allowed (billion laughs, XXE)",
        )
    if b"<!DOCTYPE" in body:
        raise ForbiddenDTDError(Reason.FORBIDDEN_DTD, "document type declarations are not allowed")


_tls = threading.local()


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        # Forced, so libxml2 never switches to UTF-16/EBCDIC detection or to a
        # declared encoding; non-UTF-8 declarations are rejected beforehand.
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        recover=False,
    )


def _parser() -> etree.XMLParser:
    # One parser per thread: an lxml parser handles one document at a time
    # (lxml locks it), and libxml2 parses without holding the GIL, so threads
    # with their own parser really run in parallel.
    parser: etree.XMLParser | None = getattr(_tls, "parser", None)
    if parser is None:
        parser = _new_parser()
        _tls.parser = parser
    return parser


# libxml2 xmlParserErrors codes we map to a specific reason.
_XML_ERR_UNDECLARED_ENTITY = 26
_XML_WAR_UNDECLARED_ENTITY = 27
_XML_ERR_UNSUPPORTED_ENCODING = 32
_XML_ERR_INVALID_ENCODING = 81
_XML_ERR_RESOURCE_LIMIT = 114


def _syntax_error(exc: etree.XMLSyntaxError) -> OmahaParseError:
    code: int | None = getattr(exc, "code", None)  # lxml-stubs lacks .code
    msg = str(exc.msg)[:200]
    if code in (_XML_ERR_UNDECLARED_ENTITY, _XML_WAR_UNDECLARED_ENTITY):
        return ForbiddenEntityError(
            Reason.FORBIDDEN_ENTITY, f"only the predefined XML entities are allowed: {msg}"
        )
    if code in (_XML_ERR_INVALID_ENCODING, _XML_ERR_UNSUPPORTED_ENCODING):
        return EncodingError(Reason.BAD_ENCODING, f"body is not valid UTF-8: {msg}")
    if code == _XML_ERR_RESOURCE_LIMIT and "depth" in msg:
        return LimitExceededError(
            Reason.TOO_DEEP, f"element nesting exceeds libxml2's limit of {_LIBXML2_MAX_DEPTH}"
        )
    return MalformedXMLError(Reason.NOT_XML, f"not well-formed XML: {msg}")


@lru_cache(maxsize=16)
def _too_deep_xpath(max_depth: int) -> etree.XPath:
    # True iff some element sits at depth max_depth + 1 (the root is depth 1).
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def _load(
    body: bytes, content_type: str | None, limits: ParseLimits, root_tag: str
) -> etree._Element:
    if not isinstance(body, bytes):
        body = bytes(body)  # bytearray / memoryview from a web framework
    if len(body) > limits.max_body_bytes:
        raise BodyTooLargeError(
            Reason.BODY_TOO_LARGE,
            f"body is {len(body)} bytes, limit is {limits.max_body_bytes}",
        )
    _check_content_type(content_type)
    if not body:
        raise MalformedXMLError(Reason.EMPTY_BODY, "body is empty")
    _check_encoding(body)
    _check_forbidden_markup(body)

    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None

    count = 0
    max_elements = limits.max_elements
    for _ in root.iter():  # elements only: comments/PIs removed, entities refused
        count += 1
        if count > max_elements:
            raise LimitExceededError(Reason.TOO_MANY_ELEMENTS, f"more than {max_elements} elements")
    if count > limits.max_depth and _too_deep_xpath(limits.max_depth)(root):
        raise LimitExceededError(
            Reason.TOO_DEEP, f"elements nested deeper than {limits.max_depth} levels"
        )

    if root.tag != root_tag:
        raise SchemaError(
            Reason.WRONG_ROOT,
            f"root element is <{str(root.tag)[:64]}>, expected <{root_tag}>",
            element=root_tag,
        )
    protocol = root.get("protocol")
    if protocol is None:
        raise SchemaError(
            Reason.MISSING_ATTRIBUTE,
            f"<{root_tag}> has no 'protocol' attribute",
            element=root_tag,
            attribute="protocol",
        )
    if protocol != PROTOCOL_VERSION:
        raise SchemaError(
            Reason.BAD_PROTOCOL,
            f"unsupported Omaha protocol {protocol[:32]!r}, expected {PROTOCOL_VERSION!r}",
            element=root_tag,
            attribute="protocol",
        )
    return root


# --- attribute readers ---------------------------------------------------------


def _show(value: str) -> str:
    return repr(value[:40]) + ("..." if len(value) > 40 else "")


def _too_long(el: etree._Element, name: str, value: str, maxlen: int) -> LimitExceededError:
    return LimitExceededError(
        Reason.ATTRIBUTE_TOO_LONG,
        f"attribute '{name}' of <{el.tag}> is {len(value)} characters, limit is {maxlen}",
    )


def _bad(el: etree._Element, name: str, value: str, what: str) -> SchemaError:
    return SchemaError(
        Reason.BAD_ATTRIBUTE,
        f"attribute '{name}' of <{el.tag}> is not {what}: {_show(value)}",
        element=str(el.tag),
        attribute=name,
    )


def _missing(el: etree._Element, name: str) -> SchemaError:
    return SchemaError(
        Reason.MISSING_ATTRIBUTE,
        f"<{el.tag}> has no '{name}' attribute",
        element=str(el.tag),
        attribute=name,
    )


def _str(el: etree._Element, name: str, maxlen: int) -> str | None:
    value = el.get(name)
    if value is not None and len(value) > maxlen:
        raise _too_long(el, name, value, maxlen)
    return value


def _req_str(el: etree._Element, name: str, maxlen: int) -> str:
    value = _str(el, name, maxlen)
    if value is None:
        raise _missing(el, name)
    return value


# Go's strconv.ParseInt after strings.TrimSpace: optional sign, ASCII digits.
_INT_RE = re.compile(r"[ \t\r\n]*([+-]?[0-9]{1,20})[ \t\r\n]*")


def _to_int(el: etree._Element, name: str, value: str, lo: int, hi: int) -> int:
    if value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)  # fast path: what every real client sends
    else:
        m = _INT_RE.fullmatch(value)
        if m is None:
            raise _bad(el, name, value, "an integer")
        number = int(m.group(1))
    if not lo <= number <= hi:
        raise _bad(el, name, value, f"an integer in [{lo}, {hi}]")
    return number


def _int(el: etree._Element, name: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int | None:
    value = el.get(name)
    if not value:  # absent, or "" which Go's encoding/xml also reads as "not set"
        return None
    return _to_int(el, name, value, lo, hi)


def _req_int(el: etree._Element, name: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    value = el.get(name)
    if value is None:
        raise _missing(el, name)
    return _to_int(el, name, value, lo, hi)


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _bool(el: etree._Element, name: str) -> bool | None:
    value = el.get(name)
    if not value:
        return None
    folded = value.strip(" \t\r\n").lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise _bad(el, name, value, "a boolean (true/false/1/0)")


# --- request -------------------------------------------------------------------


def parse_request(
    body: bytes, content_type: str | None = None, limits: ParseLimits = DEFAULT_LIMITS
) -> Request:
    """Parse an Omaha request as update_engine sends it.

    Raises :class:`~wellcar.omaha.errors.OmahaParseError` (and nothing else) on
    any unacceptable input.
    """
    root = _load(body, content_type, limits, "request")
    maxlen = limits.max_attribute_length
    req = Request(
        protocol=PROTOCOL_VERSION,
        version=_str(root, "version", maxlen),
        updaterversion=_str(root, "updaterversion", maxlen),
        installsource=_str(root, "installsource", maxlen),
        ismachine=_int(root, "ismachine"),
        requestid=_str(root, "requestid", maxlen),
        sessionid=_str(root, "sessionid", maxlen),
    )
    apps = req.apps
    for child in root:
        tag = child.tag
        if tag == "app":
            if len(apps) >= limits.max_apps:
                raise LimitExceededError(
                    Reason.TOO_MANY_APPS, f"more than {limits.max_apps} <app> elements"
                )
            apps.append(_parse_app_request(child, limits))
        elif tag == "os" and req.os is None:
            req.os = OS(
                platform=_str(child, "platform", maxlen),
                version=_str(child, "version", maxlen),
                sp=_str(child, "sp", maxlen),
                arch=_str(child, "arch", maxlen),
            )
    return req


def _parse_app_request(el: etree._Element, limits: ParseLimits) -> AppRequest:
    maxlen = limits.max_attribute_length
    app = AppRequest(
        appid=_req_str(el, "appid", maxlen),
        version=_str(el, "version", maxlen),
        track=_str(el, "track", maxlen),
        bootid=_str(el, "bootid", maxlen),
        machineid=_str(el, "machineid", maxlen),
        machinealias=_str(el, "machinealias", maxlen),
        oem=_str(el, "oem", maxlen),
        oemversion=_str(el, "oemversion", maxlen),
        alephversion=_str(el, "alephversion", maxlen),
        lang=_str(el, "lang", maxlen),
        board=_str(el, "board", maxlen),
        hardware_class=_str(el, "hardware_class", maxlen),
        delta_okay=_bool(el, "delta_okay"),
        multi_manifest_ok=_bool(el, "multi_manifest_ok"),
    )
    events = app.events
    for child in el:
        tag = child.tag
        if tag == "event":
            if len(events) >= limits.max_events_per_app:
                raise LimitExceededError(
                    Reason.TOO_MANY_EVENTS,
                    f"more than {limits.max_events_per_app} <event> elements in one <app>",
                )
            events.append(
                Event(
                    eventtype=_req_int(child, "eventtype"),
                    eventresult=_req_int(child, "eventresult"),
                    errorcode=_int(child, "errorcode"),
                    previousversion=_str(child, "previousversion", maxlen),
                    nextversion=_str(child, "nextversion", maxlen),
                )
            )
        elif tag == "ping" and app.ping is None:
            app.ping = Ping(active=_int(child, "active"), r=_int(child, "r"), a=_int(child, "a"))
        elif tag == "updatecheck" and app.updatecheck is None:
            app.updatecheck = UpdateCheck(
                targetversionprefix=_str(child, "targetversionprefix", maxlen)
            )
    return app


# --- response ------------------------------------------------------------------


def parse_response(
    body: bytes,
    content_type: str | None = None,
    limits: ParseLimits = DEFAULT_RESPONSE_LIMITS,
) -> Response:
    """Parse an Omaha response as Nebraska (go-omaha) or Wellcar sends it.

    Raises :class:`~wellcar.omaha.errors.OmahaParseError` (and nothing else) on
    any unacceptable input.
    """
    root = _load(body, content_type, limits, "response")
    maxlen = limits.max_attribute_length
    resp = Response(
        protocol=PROTOCOL_VERSION,
        server=_str(root, "server", maxlen) or "",
        daystart_elapsed_seconds=None,
    )
    seen_daystart = False
    apps = resp.apps
    for child in root:
        tag = child.tag
        if tag == "app":
            if len(apps) >= limits.max_apps:
                raise LimitExceededError(
                    Reason.TOO_MANY_APPS, f"more than {limits.max_apps} <app> elements"
                )
            apps.append(_parse_app_response(child, limits))
        elif tag == "daystart" and not seen_daystart:
            seen_daystart = True
            resp.daystart_elapsed_seconds = _int(child, "elapsed_seconds")
    return resp


def _parse_app_response(el: etree._Element, limits: ParseLimits) -> AppResponse:
    maxlen = limits.max_attribute_length
    app = AppResponse(appid=_req_str(el, "appid", maxlen))
    status = _str(el, "status", maxlen)
    if status is not None:  # update_engine ignores app@status; absent keeps the model default
        app.status = status
    statuses = app.event_statuses
    for child in el:
        tag = child.tag
        if tag == "event":
            if len(statuses) >= limits.max_events_per_app:
                raise LimitExceededError(
                    Reason.TOO_MANY_EVENTS,
                    f"more than {limits.max_events_per_app} <event> elements in one <app>",
                )
            statuses.append(_str(child, "status", maxlen) or "")
        elif tag == "ping" and app.ping_status is None:
            app.ping_status = _str(child, "status", maxlen) or ""
        elif tag == "updatecheck" and app.updatecheck is None:
            app.updatecheck = _parse_updatecheck(child, maxlen)
    return app


def _parse_updatecheck(el: etree._Element, maxlen: int) -> UpdateCheckResponse:
    uc = UpdateCheckResponse(
        status=_req_str(el, "status", maxlen),
        poll_interval=_int(el, "PollInterval"),
    )
    for child in el:
        tag = child.tag
        if tag == "urls":
            uc.urls.extend(_req_str(url, "codebase", maxlen) for url in child if url.tag == "url")
        elif tag == "manifest":
            uc.manifests.append(_parse_manifest(child, maxlen))
    return uc


def _parse_manifest(el: etree._Element, maxlen: int) -> Manifest:
    manifest = Manifest(
        version=_req_str(el, "version", maxlen),
        is_floor=_bool(el, "is_floor"),
        floor_reason=_str(el, "floor_reason", maxlen),
        is_target=_bool(el, "is_target"),
    )
    for child in el:
        tag = child.tag
        if tag == "packages":
            for pkg in child:
                if pkg.tag != "package":
                    continue
                required = _bool(pkg, "required")
                size = _int(pkg, "size", 0, UINT64_MAX)
                manifest.packages.append(
                    Package(
                        name=_req_str(pkg, "name", maxlen),
                        size=0 if size is None else size,
                        hash=_str(pkg, "hash", maxlen),
                        hash_sha256=_str(pkg, "hash_sha256", maxlen),
                        required=True if required is None else required,
                    )
                )
        elif tag == "actions":
            for act in child:
                if act.tag != "action":
                    continue
                manifest.actions.append(
                    Action(
                        event=_req_str(act, "event", maxlen),
                        sha256=_str(act, "sha256", maxlen),
                        display_version=_str(act, "DisplayVersion", maxlen),
                        is_delta_payload=_bool(act, "IsDeltaPayload"),
                        disable_payload_backoff=_bool(act, "DisablePayloadBackoff"),
                        max_failure_count_per_url=_int(act, "MaxFailureCountPerUrl", 0),
                        metadata_signature_rsa=_str(act, "MetadataSignatureRsa", maxlen),
                        metadata_size=_str(act, "MetadataSize", maxlen),
                        needsadmin=_bool(act, "needsadmin"),
                        deadline=_str(act, "deadline", maxlen),
                    )
                )
    return manifest
