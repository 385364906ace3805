"""Parsing real update_engine requests, and the documented leniency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from wellcar.omaha import (
    FLATCAR_APP_ID,
    OS,
    AppRequest,
    ErrorCode,
    ErrorFlag,
    Event,
    EventResult,
    EventType,
    LimitExceededError,
    ParseLimits,
    Ping,
    Reason,
    Request,
    SchemaError,
    UpdateCheck,
    parse_request,
    split_error_code,
)

from .omaha_samples import (
    REFERENCE_REQUEST,
    UPDATE_ENGINE_CHECK,
    UPDATE_ENGINE_ERROR,
    UPDATE_ENGINE_EVENT,
    UPDATE_ENGINE_PING,
)


def test_reference_example_request() -> None:
    req = parse_request(REFERENCE_REQUEST, "text/xml")
    assert req == Request(
        protocol="3.0",
        version="update_engine-0.4.10",
        installsource="scheduler",
        ismachine=1,
        os=OS(platform="CoreOS", version="Chateau", sp="4459.2.1_x86_64"),
        apps=[
            AppRequest(
                appid=FLATCAR_APP_ID,
                version="4459.2.1",
                track="stable",
                bootid="{b3c…}",
                machineid="9ce7…",
                oem="qemu",
                alephversion="4230.2.0",
                board="amd64-usr",
                delta_okay=False,
                ping=Ping(active=1),
                updatecheck=UpdateCheck(),
                events=[Event(eventtype=3, eventresult=2, previousversion="4230.2.3")],
            )
        ],
    )


def test_full_update_engine_update_check() -> None:
    req = parse_request(UPDATE_ENGINE_CHECK, "text/xml")
    assert req.protocol == "3.0"
    assert req.version == "update_engine-0.4.10"
    assert req.updaterversion == "update_engine-0.4.10"
    assert req.installsource == "scheduler"
    assert req.ismachine == 1
    assert req.requestid is None and req.sessionid is None
    assert req.os == OS(platform="CoreOS", version="Chateau", sp="4459.2.1_x86_64", arch=None)
    [app] = req.apps
    assert app.appid == FLATCAR_APP_ID
    assert app.version == "4459.2.1"
    assert app.track == "stable"
    assert app.bootid == "{b3c6a1e4-5f9c-4c11-9d8b-2f0e3c1a7b55}"
    assert app.machineid == "9ce7d2ab5c3e4e0f8a1b2c3d4e5f6a7b"
    assert app.oem == "qemu"
    assert app.oemversion == "0.1.2"
    assert app.alephversion == "4230.2.0"
    assert app.lang == "en-US"
    assert app.board == "amd64-usr"
    # Present-but-empty attributes stay "" (not None): that is what was sent.
    assert app.machinealias == ""
    assert app.hardware_class == ""
    assert app.delta_okay is False
    assert app.multi_manifest_ok is None
    assert app.ping == Ping(active=1, r=None, a=None)
    assert app.updatecheck == UpdateCheck(targetversionprefix=None)
    # update_engine's "not the first boot after an update" marker: empty previousversion.
    assert app.events == [
        Event(
            eventtype=EventType.UPDATE_COMPLETE,
            eventresult=EventResult.SUCCESS_REBOOT,
            previousversion="",
        )
    ]
    assert app.events[0].errorcode is None


def test_event_only_request() -> None:
    req = parse_request(UPDATE_ENGINE_EVENT, "text/xml")
    [app] = req.apps
    assert req.installsource == "ondemandupdate"
    assert app.board == "arm64-usr"
    assert app.machinealias == "db-1"
    assert app.ping is None
    assert app.updatecheck is None
    assert app.events == [Event(eventtype=13, eventresult=1)]


def test_error_event_with_flags() -> None:
    [app] = parse_request(UPDATE_ENGINE_ERROR).apps
    [event] = app.events
    assert (event.eventtype, event.eventresult, event.errorcode) == (3, 0, 268435490)
    assert event.errorcode is not None
    split = split_error_code(event.errorcode)
    assert split.code == ErrorCode.OMAHA_RESPONSE_INVALID
    assert split.flags == ErrorFlag.TEST_OMAHA_URL


def test_ping_only_request() -> None:
    [app] = parse_request(UPDATE_ENGINE_PING).apps
    assert app.ping == Ping(active=1)
    assert app.updatecheck is None
    assert app.events == []


def test_negative_errorcode_from_dev_mode_flag() -> None:
    # update_engine formats the unsigned code with %d: bit 31 makes it negative.
    body = UPDATE_ENGINE_EVENT.replace(
        b'eventresult="1"', b'eventresult="0" errorcode="-2147483614"'
    )
    [event] = parse_request(body).apps[0].events
    assert event.errorcode == -2147483614
    split = split_error_code(event.errorcode)
    assert split.code == 34
    assert split.flags == ErrorFlag.DEV_MODE


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "   ",
        "text/xml",
        "TEXT/XML",
        "application/xml",
        "text/xml; charset=UTF-8",
        'application/xml; charset="utf-8"',
        "text/xml;charset=utf8; boundary=x",
    ],
)
def test_accepted_content_types(content_type: str | None) -> None:
    assert parse_request(UPDATE_ENGINE_PING, content_type).apps[0].ping == Ping(active=1)


def test_unknown_attributes_and_elements_are_ignored() -> None:
    body = b"""<request protocol="3.0" testsource="x" userid="{u}">
      <hw physmemory="8"/>
      <os platform="CoreOS" flavour="x"><extra><deeper/></extra></os>
      <app appid="a" from_track="beta" installage="3" client="c" nextversion="1">
        <data name="x">text</data>
        <ping active="1" rd="5"/>
        text between elements
        <event eventtype="3" eventresult="1" unknown="abc"/>
      </app>
    </request>"""
    req = parse_request(body)
    assert req.os == OS(platform="CoreOS")
    assert req.apps == [
        AppRequest(appid="a", ping=Ping(active=1), events=[Event(eventtype=3, eventresult=1)])
    ]


def test_first_os_ping_and_updatecheck_win() -> None:
    body = b"""<request protocol="3.0"><os platform="first"/><os platform="second"/>
      <app appid="a"><ping active="1"/><ping active="0"/>
      <updatecheck targetversionprefix="1."/><updatecheck targetversionprefix="2."/></app>
    </request>"""
    req = parse_request(body)
    assert req.os is not None and req.os.platform == "first"
    assert req.apps[0].ping == Ping(active=1)
    assert req.apps[0].updatecheck == UpdateCheck(targetversionprefix="1.")


def test_multiple_apps_and_events_keep_order() -> None:
    body = b"""<request protocol="3.0">
      <app appid="one"><event eventtype="13" eventresult="1"/>
      <event eventtype="14" eventresult="1"/></app><app appid="two"/></request>"""
    req = parse_request(body)
    assert [a.appid for a in req.apps] == ["one", "two"]
    assert [e.eventtype for e in req.apps[0].events] == [13, 14]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        (" true ", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("", None),
    ],
)
def test_boolean_spellings(raw: str, expected: bool | None) -> None:
    body = f'<request protocol="3.0"><app appid="a" delta_okay="{raw}"/></request>'.encode()
    assert parse_request(body).apps[0].delta_okay is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3", 3), (" 3 ", 3), ("+3", 3), ("-7", -7), ("003", 3), ("&#10;3", 3), ("", None)],
)
def test_integer_spellings(raw: str, expected: int | None) -> None:
    body = f'<request protocol="3.0"><app appid="a"><ping active="{raw}"/></app></request>'
    assert parse_request(body.encode()).apps[0].ping == Ping(active=expected)


def test_escaped_and_non_ascii_attribute_values() -> None:
    body = (
        '<request protocol="3.0"><app appid="a&amp;b&lt;c&gt;d&quot;e&apos;f&#x263A;&#9;"'
        ' machinealias="Grüße, 東京"/></request>'
    ).encode()
    [app] = parse_request(body).apps
    assert app.appid == "a&b<c>d\"e'f\u263a\t"
    assert app.machinealias == "Grüße, 東京"


def test_utf8_bom_declaration_variants_comments_and_pis_are_accepted() -> None:
    body = (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8' standalone='yes'?>"
        b"<!-- a comment --><?pi data?>"
        b'<request protocol="3.0"><!-- inside --><app appid="a"><?pi?></app></request>'
    )
    assert parse_request(body).apps == [AppRequest(appid="a")]


def test_custom_limits_apply() -> None:
    body = (
        b'<request protocol="3.0"><app appid="a"><event eventtype="3" eventresult="1"/>'
        b'<event eventtype="3" eventresult="1"/></app><app appid="b"/></request>'
    )
    parse_request(body)  # fine with the defaults
    with pytest.raises(LimitExceededError) as apps:
        parse_request(body, limits=ParseLimits(max_apps=1))
    assert apps.value.reason == Reason.TOO_MANY_APPS
    with pytest.raises(LimitExceededError) as events:
        parse_request(body, limits=ParseLimits(max_events_per_app=1))
    assert events.value.reason == Reason.TOO_MANY_EVENTS
    with pytest.raises(LimitExceededError) as elements:
        parse_request(body, limits=ParseLimits(max_elements=4))
    assert elements.value.reason == Reason.TOO_MANY_ELEMENTS
    with pytest.raises(LimitExceededError) as depth:
        parse_request(body, limits=ParseLimits(max_depth=2))
    assert depth.value.reason == Reason.TOO_DEEP


def test_limit_boundaries_are_inclusive() -> None:
    # Exactly max_depth levels and max_elements elements are fine; one more is not.
    nested = b'<request protocol="3.0">' + b"<x>" * 7 + b"</x>" * 7 + b"</request>"
    parse_request(nested, limits=ParseLimits(max_depth=8))
    with pytest.raises(LimitExceededError):
        parse_request(nested, limits=ParseLimits(max_depth=7))
    flat = b'<request protocol="3.0">' + b"<x/>" * 9 + b"</request>"
    parse_request(flat, limits=ParseLimits(max_elements=10))
    with pytest.raises(LimitExceededError):
        parse_request(flat, limits=ParseLimits(max_elements=9))


def test_attribute_length_limit_names_the_attribute() -> None:
    body = f'<request protocol="3.0"><app appid="a" track="{"x" * 3000}"/></request>'.encode()
    with pytest.raises(LimitExceededError) as exc:
        parse_request(body)
    assert exc.value.reason == Reason.ATTRIBUTE_TOO_LONG
    assert "'track'" in str(exc.value) and "2048" in str(exc.value)
    assert parse_request(body, limits=ParseLimits(max_attribute_length=4096)).apps[0].track


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        ParseLimits(max_depth=0)
    with pytest.raises(ValueError):
        ParseLimits(max_depth=300)


def test_namespaced_root_is_not_a_request() -> None:
    with pytest.raises(SchemaError) as exc:
        parse_request(b'<request xmlns="urn:x" protocol="3.0"/>')
    assert exc.value.reason == Reason.WRONG_ROOT


def test_parsing_from_many_threads_at_once() -> None:
    expected = parse_request(UPDATE_ENGINE_CHECK)
    bodies = [UPDATE_ENGINE_CHECK, UPDATE_ENGINE_EVENT] * 200

    def parse(body: bytes) -> Request:
        return parse_request(body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(parse, bodies))
    assert results[::2] == [expected] * 200
    assert all(r.apps[0].events[0].eventtype == 13 for r in results[1::2])
