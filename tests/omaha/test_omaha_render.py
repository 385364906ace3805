"""Rendering: exact bytes of Nebraska-style responses, escaping, and parse-back."""

from __future__ import annotations

from lxml import etree

from wellcar.omaha import (
    FLATCAR_APP_ID,
    OS,
    Action,
    AppRequest,
    AppResponse,
    AppStatus,
    Event,
    EventResult,
    EventType,
    Manifest,
    Package,
    Ping,
    Request,
    Response,
    UpdateCheck,
    UpdateCheckResponse,
    UpdateStatus,
    escape_attr,
    parse_request,
    parse_response,
    render_request,
    render_response,
)

from .omaha_samples import UPDATE_ENGINE_CHECK

SHA1 = "x5N3TyB8Vr0x3QvmcnPNX6Dz0q4="
SHA256 = "cyGJrMF8ZuKzNxt6j5IbBn2ZnmjdDRVpSHuQxGzEzQ8="


def nebraska_update() -> Response:
    return Response(
        server="nebraska",
        apps=[
            AppResponse(
                appid=FLATCAR_APP_ID,
                status=AppStatus.OK,
                ping_status="ok",
                event_statuses=["ok"],
                updatecheck=UpdateCheckResponse(
                    status=UpdateStatus.OK,
                    urls=["https://update.release.flatcar-linux.net/amd64-usr/4459.2.2/"],
                    manifests=[
                        Manifest(
                            version="4459.2.2",
                            packages=[
                                Package(
                                    name="flatcar_production_update.gz",
                                    hash=SHA1,
                                    size=480000000,
                                    required=True,
                                )
                            ],
                            actions=[
                                Action(
                                    event="postinstall",
                                    sha256=SHA256,
                                    disable_payload_backoff=True,
                                )
                            ],
                        )
                    ],
                ),
            )
        ],
    )


def test_nebraska_style_response_bytes() -> None:
    out = render_response(nebraska_update())
    assert out == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"/>'
        b'<app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="ok">'
        b'<event status="ok"/><ping status="ok"/><updatecheck status="ok"><urls>'
        b'<url codebase="https://update.release.flatcar-linux.net/amd64-usr/4459.2.2/"/></urls>'
        b'<manifest version="4459.2.2"><packages><package name="flatcar_production_update.gz" '
        b'hash="x5N3TyB8Vr0x3QvmcnPNX6Dz0q4=" size="480000000" required="true"/></packages>'
        b'<actions><action event="postinstall" '
        b'sha256="cyGJrMF8ZuKzNxt6j5IbBn2ZnmjdDRVpSHuQxGzEzQ8=" DisablePayloadBackoff="true"/>'
        b"</actions></manifest></updatecheck></app></response>"
    )
    assert parse_response(out) == nebraska_update()


def test_every_action_and_manifest_attribute_uses_the_xml_name() -> None:
    resp = nebraska_update()
    assert resp.apps[0].updatecheck is not None
    uc = resp.apps[0].updatecheck
    uc.poll_interval = 3600
    manifest = uc.manifests[0]
    manifest.is_floor = True
    manifest.floor_reason = "migrates to cgroup v2"
    manifest.is_target = False
    manifest.packages[0].hash_sha256 = SHA256
    manifest.packages.append(Package(name="oem-azure.gz", size=12, required=False))
    manifest.actions[0] = Action(
        sha256=SHA256,
        display_version="4459.2.2",
        is_delta_payload=False,
        disable_payload_backoff=True,
        max_failure_count_per_url=10,
        metadata_signature_rsa="c2ln",
        metadata_size="1234",
        needsadmin=False,
        deadline="now",
    )
    out = render_response(resp)
    for fragment in [
        b'<updatecheck status="ok" PollInterval="3600">',
        b'<manifest version="4459.2.2" is_floor="true" floor_reason="migrates to cgroup v2" '
        b'is_target="false">',
        b'hash_sha256="cyGJrMF8ZuKzNxt6j5IbBn2ZnmjdDRVpSHuQxGzEzQ8="',
        b'<package name="oem-azure.gz" size="12" required="false"/>',
        b'event="postinstall"',
        b'DisplayVersion="4459.2.2"',
        b'IsDeltaPayload="false"',
        b'DisablePayloadBackoff="true"',
        b'MaxFailureCountPerUrl="10"',
        b'MetadataSignatureRsa="c2ln"',
        b'MetadataSize="1234"',
        b'needsadmin="false"',
        b'deadline="now"',
    ]:
        assert fragment in out, fragment
    assert parse_response(out) == resp


def test_none_attributes_are_omitted() -> None:
    out = render_response(nebraska_update())
    for name in [
        b"PollInterval",
        b"hash_sha256",
        b"DisplayVersion",
        b"IsDeltaPayload",
        b"MaxFailureCountPerUrl",
        b"MetadataSize",
        b"needsadmin",
        b"deadline",
        b"is_floor",
        b"floor_reason",
    ]:
        assert name not in out, name


def test_noupdate_and_error_responses() -> None:
    resp = Response(
        daystart_elapsed_seconds=None,
        apps=[
            AppResponse(appid="a", ping_status="ok", updatecheck=UpdateCheckResponse("noupdate")),
            AppResponse(
                appid="b",
                status=AppStatus.MAX_UPDATES_PER_PERIOD_LIMIT_REACHED,
                updatecheck=UpdateCheckResponse(UpdateStatus.INTERNAL_ERROR, poll_interval=60),
            ),
        ],
    )
    out = render_response(resp)
    assert out == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<response protocol="3.0" server="wellcar">'
        b'<app appid="a" status="ok"><ping status="ok"/><updatecheck status="noupdate"/></app>'
        b'<app appid="b" status="error-maxUpdatesPerPeriodLimitReached">'
        b'<updatecheck status="error-internal" PollInterval="60"/></app></response>'
    )
    assert parse_response(out) == resp


def test_escaping_is_exact_and_reversible() -> None:
    nasty = "a&b<c>d\"e'f\tg\nh\ri]]>j"
    assert escape_attr(nasty) == "a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i]]&gt;j"
    resp = Response(server=nasty, apps=[AppResponse(appid=nasty, status=nasty)])
    out = render_response(resp)
    # An independent XML parser reads back exactly the original characters.
    root = etree.fromstring(out)
    assert root.get("server") == nasty
    assert root[1].get("appid") == nasty
    assert parse_response(out) == resp


def test_illegal_xml_characters_become_replacement_characters() -> None:
    bad = "a\x00b\x01c\x0bd\x1fe\ud800f\ufffeg\uffffh"
    assert escape_attr(bad) == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\ufffdg\ufffdh"
    out = render_request(Request(apps=[AppRequest(appid="a", machinealias=bad)]))
    root = etree.fromstring(out)  # well-formed, valid UTF-8
    assert root[0].get("machinealias") == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\ufffdg\ufffdh"


def test_non_ascii_is_written_as_utf8() -> None:
    out = render_response(Response(server="Grüße 東京 🚀"))
    assert 'server="Grüße 東京 🚀"'.encode() in out


def test_request_rendering_and_enum_values() -> None:
    req = Request(
        version="wellcar-agent-0.1",
        updaterversion="wellcar-agent-0.1",
        installsource="scheduler",
        ismachine=1,
        os=OS(platform="CoreOS", version="Chateau", sp="4459.2.1_x86_64", arch="x64"),
        apps=[
            AppRequest(
                appid=FLATCAR_APP_ID,
                version="4459.2.1",
                track="stable",
                delta_okay=False,
                multi_manifest_ok=True,
                ping=Ping(active=1, r=2, a=3),
                updatecheck=UpdateCheck(),
                events=[
                    Event(
                        eventtype=EventType.UPDATE_COMPLETE,
                        eventresult=EventResult.ERROR,
                        errorcode=268435490,
                    )
                ],
            )
        ],
    )
    out = render_request(req)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<request protocol="3.0" ')
    assert b'<os platform="CoreOS" version="Chateau" sp="4459.2.1_x86_64" arch="x64"/>' in out
    assert b'delta_okay="false" multi_manifest_ok="true">' in out
    assert b'<ping active="1" r="2" a="3"/><updatecheck/>' in out
    assert b'<event eventtype="3" eventresult="0" errorcode="268435490"/>' in out
    assert parse_request(out) == req


def test_update_engine_request_survives_parse_render_parse() -> None:
    parsed = parse_request(UPDATE_ENGINE_CHECK)
    assert parse_request(render_request(parsed)) == parsed
