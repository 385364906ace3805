"""Hostile and malformed input: a clear refusal, a log line, and the server keeps serving."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from wellcar.omaha import FLATCAR_APP_ID, render_request
from wellcar.server.data.applications import canonical_uuid

from .fleet_seed import Seed
from .omaha_client import Node, post

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<request protocol="3.0"><app appid="&lol3;"/></request>"""


@pytest.fixture
def seeded(client: TestClient) -> None:
    seed = Seed(client.app.state.engine)  # type: ignore[attr-defined]
    app = seed.app(canonical_uuid(FLATCAR_APP_ID))
    seed.group(app, seed.channel(app, "stable", seed.package(app, "2.0.0")), "stable")


def _still_serving(client: TestClient) -> None:
    answer = post(client, Node("healthy", "1.0.0").check_request())
    assert answer.status == "ok"
    assert answer.updatecheck is not None and answer.updatecheck.status == "ok"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"this is not xml", "text/xml", 400, "not-xml"),
        (b"", "text/xml", 400, None),
        (b"<request protocol='3.0'><app appid='x'>", "text/xml", 400, "not-xml"),
        (BILLION_LAUGHS, "text/xml", 400, None),
        (b"<response protocol='3.0'/>", "text/xml", 400, "wrong-root"),
        (b"<request protocol='3.0'><app/></request>", "text/xml", 400, "missing-attribute"),
        (
            b"<request protocol='3.0'><app appid='a'><event eventtype='x' eventresult='1'/></app>"
            b"</request>",
            "text/xml",
            400,
            "bad-attribute",
        ),
        (
            render_request(Node("m", "1.0.0").check_request()),
            "application/json",
            415,
            "bad-content-type",
        ),
        (b"<a>" * 100 + b"</a>" * 100, "text/xml", 400, None),
    ],
)
def test_malformed_omaha(
    client: TestClient,
    seeded: None,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    status: int,
    reason: str | None,
) -> None:
    with caplog.at_level(logging.WARNING, logger="wellcar.server"):
        resp = client.post("/v1/update/", content=body, headers={"Content-Type": content_type})
    assert resp.status_code == status
    assert b"<error reason=" in resp.content
    if reason:
        assert f'reason="{reason}"'.encode() in resp.content
    assert any(
        "omaha request" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records
    )
    _still_serving(client)


def test_huge_body_refused_before_reading(client: TestClient, seeded: None) -> None:
    resp = client.post(
        "/v1/update/", content=b"<" * (2 * 1024 * 1024), headers={"Content-Type": "text/xml"}
    )
    assert resp.status_code == 413
    assert b'reason="body-too-large"' in resp.content
    _still_serving(client)


def test_absurd_versions(client: TestClient, seeded: None) -> None:
    for version in ("999999999999999999999.0.0", "1.2", "-1.0.0", "x" * 90, "1.0.0\u202e"):
        answer = post(client, Node("absurd", version).check_request())
        if version.startswith("999"):
            # Valid semver, just large: nothing newer to offer.
            assert answer.updatecheck is not None and answer.updatecheck.status == "noupdate"
        else:
            assert answer.status == "error-instanceRegistrationFailed"
    _still_serving(client)


def test_many_apps_in_one_request(client: TestClient, seeded: None) -> None:
    req = Node("multi", "1.0.0").check_request()
    req.apps = req.apps * 3
    resp = client.post(
        "/v1/update/", content=render_request(req), headers={"Content-Type": "text/xml"}
    )
    assert resp.status_code == 200
    _still_serving(client)


def test_get_is_not_allowed(client: TestClient) -> None:
    assert client.get("/v1/update/").status_code == 405


def test_secret_suffix(data_dir: object, clock: object, tmp_path: object) -> None:
    from pathlib import Path

    from wellcar.server.api.app import create_app
    from wellcar.server.settings import ServerSettings

    app = create_app(ServerSettings(data_dir=Path(str(tmp_path)) / "s", omaha_path_suffix="s3cr3t"))
    with TestClient(app) as c:
        seed = Seed(app.state.engine)
        a = seed.app(canonical_uuid(FLATCAR_APP_ID))
        seed.group(a, seed.channel(a, "stable", seed.package(a, "2.0.0")), "stable")
        assert c.post("/v1/update/", content=b"<request/>").status_code in (404, 405)
        answer = post(c, Node("s", "1.0.0").check_request(), path="/v1/update/s3cr3t")
        assert answer.status == "ok"
