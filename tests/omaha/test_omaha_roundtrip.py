"""Property tests: model -> render -> parse gives back the model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from wellcar.omaha import (
    OS,
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
    parse_request,
    parse_response,
    render_request,
    render_response,
)
from wellcar.omaha.parse import INT64_MAX, INT64_MIN, UINT64_MAX

ILLEGAL_XML = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]] + [
    "\ufffe",
    "\uffff",
]

# Legal XML 1.0 characters, biased towards the ones escaping must handle.
legal_chars = st.one_of(
    st.sampled_from(list("&<>\"'\t\n\r ;#]x")),
    st.characters(codec="utf-8", exclude_characters="".join(ILLEGAL_XML)),
)
text = st.text(legal_chars, max_size=24)
opt_text = st.none() | text
int64 = st.integers(INT64_MIN, INT64_MAX)
opt_int = st.none() | int64
opt_bool = st.none() | st.booleans()

events = st.builds(
    Event,
    eventtype=int64,
    eventresult=int64,
    errorcode=opt_int,
    previousversion=opt_text,
    nextversion=opt_text,
)
app_requests = st.builds(
    AppRequest,
    appid=text,
    version=opt_text,
    track=opt_text,
    bootid=opt_text,
    machineid=opt_text,
    machinealias=opt_text,
    oem=opt_text,
    oemversion=opt_text,
    alephversion=opt_text,
    lang=opt_text,
    board=opt_text,
    hardware_class=opt_text,
    delta_okay=opt_bool,
    multi_manifest_ok=opt_bool,
    ping=st.none() | st.builds(Ping, active=opt_int, r=opt_int, a=opt_int),
    updatecheck=st.none() | st.builds(UpdateCheck, targetversionprefix=opt_text),
    events=st.lists(events, max_size=4),
)
requests = st.builds(
    Request,
    protocol=st.just("3.0"),
    version=opt_text,
    updaterversion=opt_text,
    installsource=opt_text,
    ismachine=opt_int,
    requestid=opt_text,
    sessionid=opt_text,
    os=st.none() | st.builds(OS, platform=opt_text, version=opt_text, sp=opt_text, arch=opt_text),
    apps=st.lists(app_requests, max_size=3),
)

packages = st.builds(
    Package,
    name=text,
    size=st.integers(0, UINT64_MAX),
    hash=opt_text,
    hash_sha256=opt_text,
    required=st.booleans(),
)
actions = st.builds(
    Action,
    event=text,
    sha256=opt_text,
    display_version=opt_text,
    is_delta_payload=opt_bool,
    disable_payload_backoff=opt_bool,
    max_failure_count_per_url=st.none() | st.integers(0, INT64_MAX),
    metadata_signature_rsa=opt_text,
    metadata_size=opt_text,
    needsadmin=opt_bool,
    deadline=opt_text,
)
manifests = st.builds(
    Manifest,
    version=text,
    packages=st.lists(packages, max_size=3),
    actions=st.lists(actions, max_size=2),
    is_floor=opt_bool,
    floor_reason=opt_text,
    is_target=opt_bool,
)
updatechecks = st.builds(
    UpdateCheckResponse,
    status=text,
    urls=st.lists(text, max_size=3),
    manifests=st.lists(manifests, max_size=3),
    poll_interval=opt_int,
)
app_responses = st.builds(
    AppResponse,
    appid=text,
    status=text,
    ping_status=opt_text,
    event_statuses=st.lists(text, max_size=4),
    updatecheck=st.none() | updatechecks,
)
responses = st.builds(
    Response,
    protocol=st.just("3.0"),
    server=text,
    daystart_elapsed_seconds=opt_int,
    apps=st.lists(app_responses, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(requests)
def test_request_round_trip(req: Request) -> None:
    assert parse_request(render_request(req), "text/xml; charset=utf-8") == req


@settings(max_examples=300, deadline=None)
@given(responses)
def test_response_round_trip(resp: Response) -> None:
    assert parse_response(render_response(resp), "application/xml") == resp


def _scrub(value: str) -> str:
    """What the renderer documents for characters XML 1.0 cannot carry."""
    return "".join("\ufffd" if c in ILLEGAL_XML or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


any_text = st.text(
    st.one_of(
        st.sampled_from(ILLEGAL_XML),
        st.characters(categories=["Cs"]),  # lone surrogates
        st.characters(),
        legal_chars,
    ),
    max_size=24,
)


@settings(max_examples=200, deadline=None)
@given(any_text, any_text)
def test_any_string_renders_well_formed_and_illegal_chars_become_fffd(a: str, b: str) -> None:
    req = Request(apps=[AppRequest(appid=a, machinealias=b, events=[Event(3, 1, None, b)])])
    out = render_request(req)
    etree.fromstring(out)  # an independent parser accepts every rendering
    [app] = parse_request(out).apps
    assert app.appid == _scrub(a)
    assert app.machinealias == _scrub(b)
    assert app.events[0].previousversion == _scrub(b)

    resp = Response(server=a, apps=[AppResponse(appid=b, status=a)])
    back = parse_response(render_response(resp))
    assert back.server == _scrub(a)
    assert back.apps[0].appid == _scrub(b)
