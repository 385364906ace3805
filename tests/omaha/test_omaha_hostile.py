"""Malformed and hostile input: each kind is refused with its own reason, and
nothing but OmahaParseError ever escapes the parser."""

from __future__ import annotations

import contextlib
import re
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from wellcar.omaha import (
    BodyTooLargeError,
    ContentTypeError,
    EncodingError,
    ForbiddenDTDError,
    ForbiddenEntityError,
    LimitExceededError,
    MalformedXMLError,
    OmahaParseError,
    ParseLimits,
    Reason,
    Request,
    Response,
    SchemaError,
    parse_request,
    parse_response,
)
from wellcar.omaha import parse as parse_module

from .omaha_samples import UPDATE_ENGINE_CHECK

_ENTITY = (ForbiddenEntityError, Reason.FORBIDDEN_ENTITY)
_MISSING = (SchemaError, Reason.MISSING_ATTRIBUTE)

MINIMAL = b'<request protocol="3.0"><app appid="a"/></request>'

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE request [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<request protocol="3.0"><app appid="&lol9;" track="&lol9;"/></request>"""


def refused(
    body: bytes, cls: type[OmahaParseError], reason: Reason, content_type: str | None = None
) -> OmahaParseError:
    with pytest.raises(cls) as exc:
        parse_request(body, content_type)
    assert exc.value.reason == reason
    assert isinstance(exc.value, OmahaParseError)
    return exc.value


def test_dtd_is_refused() -> None:
    body = b'<!DOCTYPE request [<!ELEMENT request ANY>]><request protocol="3.0"/>'
    refused(body, ForbiddenDTDError, Reason.FORBIDDEN_DTD)


def test_external_dtd_is_refused() -> None:
    body = b'<!DOCTYPE request SYSTEM "http://127.0.0.1:9/x.dtd"><request protocol="3.0"/>'
    refused(body, ForbiddenDTDError, Reason.FORBIDDEN_DTD)


def test_billion_laughs_is_refused() -> None:
    err = refused(BILLION_LAUGHS, ForbiddenEntityError, Reason.FORBIDDEN_ENTITY)
    assert "ENTITY" in str(err)


def xxe_body(secret_file: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE request [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]>'
        '<request protocol="3.0" version="&xxe;"><app appid="&xxe;">'
        '<event eventtype="3" eventresult="1" previousversion="&xxe;"/>&xxe;</app></request>'
    ).encode()


def test_external_entity_is_refused_and_file_never_read(tmp_path: Path) -> None:
    secret = "WELLCAR-XXE-CANARY-7f3a9c"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret)
    err = refused(xxe_body(secret_file), ForbiddenEntityError, Reason.FORBIDDEN_ENTITY)
    assert secret not in str(err) and secret not in repr(err)
    assert all(secret not in str(arg) for arg in err.args)


def test_parser_itself_does_not_expand_external_entities(tmp_path: Path) -> None:
    """Defence in depth: even if the byte scan were bypassed, the lxml parser
    configuration neither reads the file nor expands the entity."""
    secret = "WELLCAR-XXE-CANARY-second-layer"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret)
    parser = parse_module._new_parser()
    try:
        root = etree.fromstring(xxe_body(secret_file), parser)
    except etree.XMLSyntaxError as exc:
        assert secret not in str(exc)
        return
    assert secret.encode() not in etree.tostring(root)
    assert all(secret not in (v or "") for el in root.iter() for v in el.attrib.values())


def test_parser_itself_does_not_expand_billion_laughs() -> None:
    """Defence in depth, as above: libxml2's amplification limit holds too."""
    try:
        root = etree.fromstring(BILLION_LAUGHS, parse_module._new_parser())
    except etree.XMLSyntaxError:
        return
    assert len(etree.tostring(root)) < 100_000


def test_undeclared_entity_reference_is_refused() -> None:
    refused(b'<request protocol="3.0"><app appid="&foo;"/></request>', *_ENTITY)


def test_predefined_entities_and_char_refs_are_fine() -> None:
    body = b'<request protocol="3.0"><app appid="&amp;&lt;&gt;&quot;&apos;&#65;&#x42;"/></request>'
    assert parse_request(body).apps[0].appid == "&<>\"'AB"


def test_too_deep_is_refused() -> None:
    body = (
        b'<request protocol="3.0"><app appid="a">' + b"<x>" * 7 + b"</x>" * 7 + b"</app></request>"
    )
    err = refused(body, LimitExceededError, Reason.TOO_DEEP)
    assert "8" in str(err)


def test_deeper_than_libxml2_allows_is_too_deep() -> None:
    body = b'<request protocol="3.0">' + b"<x>" * 300 + b"</x>" * 300 + b"</request>"
    refused(body, LimitExceededError, Reason.TOO_DEEP)


def test_too_many_elements_is_refused() -> None:
    body = b'<request protocol="3.0">' + b"<x/>" * 300 + b"</request>"
    err = refused(body, LimitExceededError, Reason.TOO_MANY_ELEMENTS)
    assert "256" in str(err)


def test_too_large_is_refused_before_anything_else() -> None:
    body = MINIMAL + b" " * (64 * 1024 + 1 - len(MINIMAL))
    err = refused(body, BodyTooLargeError, Reason.BODY_TOO_LARGE, "application/json")
    assert "65537" in str(err) and "65536" in str(err)
    assert err.http_status == 413
    exactly_at_limit = MINIMAL + b" " * (64 * 1024 - len(MINIMAL))
    assert parse_request(exactly_at_limit).apps[0].appid == "a"


def test_not_xml_is_refused() -> None:
    refused(b"appid=a&version=1", MalformedXMLError, Reason.NOT_XML)
    refused(b'{"request": {}}', MalformedXMLError, Reason.NOT_XML)
    refused(b"   \n", MalformedXMLError, Reason.NOT_XML)


def test_empty_body_is_refused() -> None:
    refused(b"", MalformedXMLError, Reason.EMPTY_BODY)


@pytest.mark.parametrize("cut", [1, 10, 40, len(UPDATE_ENGINE_CHECK) // 2, -12, -2])
def test_truncated_xml_is_refused(cut: int) -> None:
    refused(UPDATE_ENGINE_CHECK[:cut], MalformedXMLError, Reason.NOT_XML)


def test_wrong_root_is_refused() -> None:
    err = refused(b'<response protocol="3.0"/>', SchemaError, Reason.WRONG_ROOT)
    assert "<response>" in str(err) and "<request>" in str(err)
    with pytest.raises(SchemaError) as exc:
        parse_response(MINIMAL)
    assert exc.value.reason == Reason.WRONG_ROOT


def test_protocol_must_be_3_0() -> None:
    err = refused(b'<request protocol="2.0"/>', SchemaError, Reason.BAD_PROTOCOL)
    assert "2.0" in str(err)
    refused(b"<request/>", SchemaError, Reason.MISSING_ATTRIBUTE)


def test_missing_appid_is_refused() -> None:
    err = refused(b'<request protocol="3.0"><app version="1"/></request>', *_MISSING)
    assert isinstance(err, SchemaError)
    assert (err.element, err.attribute) == ("app", "appid")
    assert "'appid'" in str(err)


@pytest.mark.parametrize("attr", ["eventtype", "eventresult"])
def test_missing_event_type_or_result_is_refused(attr: str) -> None:
    event = '<event eventtype="3" eventresult="1"/>'.replace(f'{attr}="', 'x="')
    body = f'<request protocol="3.0"><app appid="a">{event}</app></request>'.encode()
    err = refused(body, *_MISSING)
    assert isinstance(err, SchemaError) and err.attribute == attr


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("eventtype", "abc"),
        ("eventtype", "3.0"),
        ("eventtype", "0x3"),
        ("eventtype", "３"),  # a digit, but not an ASCII one
        ("eventtype", "1_000"),
        ("eventtype", ""),  # required: empty is not a value
        ("eventresult", "- 1"),
        ("errorcode", "99999999999999999999999"),  # beyond int64
        ("errorcode", "1e3"),
    ],
)
def test_bad_integer_is_refused(attribute: str, value: str) -> None:
    attrs = {"eventtype": "3", "eventresult": "0", attribute: value}
    event = "".join(f' {k}="{v}"' for k, v in attrs.items())
    body = f'<request protocol="3.0"><app appid="a"><event{event}/></app></request>'.encode()
    err = refused(body, SchemaError, Reason.BAD_ATTRIBUTE)
    assert isinstance(err, SchemaError)
    assert (err.element, err.attribute) == ("event", attribute)
    assert f"'{attribute}'" in str(err)


def test_bad_boolean_is_refused() -> None:
    body = b'<request protocol="3.0"><app appid="a" delta_okay="yes"/></request>'
    err = refused(body, SchemaError, Reason.BAD_ATTRIBUTE)
    assert "'delta_okay'" in str(err) and "'yes'" in str(err)


def test_bad_integer_message_is_bounded() -> None:
    body = f'<request protocol="3.0"><app appid="a"><ping active="{"x" * 1000}"/></app></request>'
    err = refused(body.encode(), SchemaError, Reason.BAD_ATTRIBUTE)
    assert len(str(err)) < 200


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "multipart/form-data; boundary=x", "xml"]
)
def test_bad_content_type_is_refused(content_type: str) -> None:
    err = refused(MINIMAL, ContentTypeError, Reason.BAD_CONTENT_TYPE, content_type)
    assert err.http_status == 415


def test_non_utf8_charset_is_refused() -> None:
    refused(MINIMAL, EncodingError, Reason.BAD_ENCODING, "text/xml; charset=ISO-8859-1")


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="ISO-8859-1"?><request protocol="3.0"/>',
        b"<?xml version='1.0' encoding='UTF-16'?><request protocol=\"3.0\"/>",
        '<request protocol="3.0"/>'.encode("utf-16"),  # with BOM
        '<request protocol="3.0"/>'.encode("utf-16-le"),
        '<request protocol="3.0"/>'.encode("utf-32"),
        b'<request protocol="3.0"><app appid="\xff\xfe"/></request>',  # invalid UTF-8
        b'<request protocol="3.0"><app appid="\xc3"/></request>',  # truncated sequence
    ],
)
def test_non_utf8_bodies_are_refused(body: bytes) -> None:
    refused(body, EncodingError, Reason.BAD_ENCODING)


def test_response_specific_required_attributes() -> None:
    ok = b'<response protocol="3.0" server="x"><app appid="a"><updatecheck status="ok"/></app>'
    assert isinstance(parse_response(ok + b"</response>"), Response)
    with pytest.raises(SchemaError) as exc:
        parse_response(b'<response protocol="3.0"><app appid="a"><updatecheck/></app></response>')
    assert (exc.value.reason, exc.value.attribute) == (Reason.MISSING_ATTRIBUTE, "status")
    with pytest.raises(SchemaError) as exc:
        parse_response(
            b'<response protocol="3.0"><app appid="a"><updatecheck status="ok">'
            b'<manifest version="1"><packages><package size="-1" name="p"/></packages></manifest>'
            b"</updatecheck></app></response>"
        )
    assert (exc.value.reason, exc.value.attribute) == (Reason.BAD_ATTRIBUTE, "size")


# --- fuzzing -------------------------------------------------------------------

FUZZ = settings(
    max_examples=1500,
    # A parse that takes this long is a hang, not a slow machine: real parses
    # take tens of microseconds.
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
)


def parse_or_refuse(body: bytes, content_type: str | None = None) -> None:
    try:
        req = parse_request(body, content_type)
    except OmahaParseError as exc:
        assert isinstance(exc.reason, Reason)
        assert str(exc)
    else:
        assert isinstance(req, Request)
    try:
        resp = parse_response(body, content_type)
    except OmahaParseError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert isinstance(resp, Response)


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes(body: bytes) -> None:
    parse_or_refuse(body)


@FUZZ
@given(st.binary(max_size=64), st.none() | st.text(max_size=40))
def test_fuzz_arbitrary_content_types(body: bytes, content_type: str | None) -> None:
    parse_or_refuse(MINIMAL + body, content_type)


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(UPDATE_ENGINE_CHECK)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "value"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        values = list(ATTRIBUTE_VALUE.finditer(data))
        if kind == "value" and values:
            # Keep the XML well-formed-ish but feed odd values to the attribute readers.
            m = draw(st.sampled_from(values))
            new = draw(st.sampled_from(ODD_VALUES) | st.text(max_size=12).map(str.encode))
            data[m.start(1) : m.end(1)] = new
        elif kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(XML_TOKENS))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "duplicate":
            end = pos + draw(st.integers(1, 200))
            data[pos:pos] = data[pos:end]
    return bytes(data)


ATTRIBUTE_VALUE = re.compile(rb'="([^"]*)"')
ODD_VALUES = [
    b"",
    b" ",
    b"-1",
    b"+0",
    b"x",
    b"1e9",
    b"99999999999999999999",
    b"TRUE",
    b"&amp;",
    b"&#9;",
]

XML_TOKENS = [
    b"<",
    b">",
    b"/>",
    b"</app>",
    b"<app>",
    b'<app appid="x">',
    b"<event ",
    b'eventtype="',
    b'"',
    b"'",
    b"=",
    b"&",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x110000;",
    b"&xxe;",
    b"<!DOCTYPE r>",
    b'<!ENTITY e "x">',
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"<?xml ",
    b'encoding="latin-1"',
    b"?>",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b' xmlns="urn:x"',
    b' xmlns:a="urn:a" a:appid="1"',
    b'protocol="3.0"',
]


@FUZZ
@given(mutated_requests())
def test_fuzz_mutated_update_engine_requests(body: bytes) -> None:
    parse_or_refuse(body)


@FUZZ
@given(st.lists(st.sampled_from(XML_TOKENS) | st.binary(max_size=4), max_size=60))
def test_fuzz_xml_token_soup(tokens: list[bytes]) -> None:
    parse_or_refuse(b'<request protocol="3.0">' + b"".join(tokens) + b"</request>")
    parse_or_refuse(b"".join(tokens))


# --- resource use --------------------------------------------------------------

LIMIT = 64 * 1024


def _pad_to_limit(head: bytes, unit: bytes, tail: bytes) -> bytes:
    count = (LIMIT - len(head) - len(tail)) // len(unit)
    body = head + unit * count + tail
    assert len(body) <= LIMIT
    return body


HOSTILE = {
    "deep": _pad_to_limit(b'<request protocol="3.0">', b"<a>", b""),
    "wide": _pad_to_limit(b'<request protocol="3.0">', b"<x/>", b"</request>"),
    "many-attributes": _pad_to_limit(b'<request protocol="3.0"><app appid="a"', b" a=''", b"/>"),
    "long-attribute": _pad_to_limit(
        b'<request protocol="3.0"><app appid="', b"A", b'"/></request>'
    ),
    "entities": _pad_to_limit(b'<request protocol="3.0"><app appid="', b"&amp;", b'"/></request>'),
    "char-refs": _pad_to_limit(
        b'<request protocol="3.0"><app appid="', b"&#x1F680;", b'"/></request>'
    ),
    "laughs": _pad_to_limit(b"<!DOCTYPE r [", b'<!ENTITY a "&a;&a;">', b"]><request/>"),
    "text": _pad_to_limit(b'<request protocol="3.0">', b"lol ", b"</request>"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_64k_input_memory_is_bounded(name: str) -> None:
    body = HOSTILE[name]
    parse_or_refuse(body)  # warm up (imports, thread-local parser)
    tracemalloc.start()
    try:
        with contextlib.suppress(OmahaParseError):
            parse_request(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # tracemalloc sees Python allocations only; libxml2's own tree is bounded
    # by the 64 KiB body (at most ~16k nodes).
    assert peak < 10 * 1024 * 1024, f"{name}: peak {peak} bytes"


def test_hostile_inputs_are_refused_with_the_expected_reasons() -> None:
    reasons: dict[str, Reason | None] = {}
    for name, body in HOSTILE.items():
        try:
            parse_request(body, limits=ParseLimits())
        except OmahaParseError as exc:
            reasons[name] = exc.reason
        else:
            reasons[name] = None
    assert reasons == {
        "deep": Reason.TOO_DEEP,
        "wide": Reason.TOO_MANY_ELEMENTS,
        "many-attributes": Reason.NOT_XML,  # duplicate attribute names
        "long-attribute": Reason.ATTRIBUTE_TOO_LONG,
        "entities": Reason.ATTRIBUTE_TOO_LONG,
        "char-refs": Reason.ATTRIBUTE_TOO_LONG,
        "laughs": Reason.FORBIDDEN_ENTITY,
        "text": None,  # text content is ignored: a valid, empty request
    }
