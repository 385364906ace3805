"""/health, /metrics and token handling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.api.app import create_app
from wellcar.server.auth import Role, Tokens
from wellcar.server.console_settings import ConsoleAuth, ConsoleSettings, OidcSettings
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.settings import ServerSettings

from .fleet_seed import Seed
from .omaha_client import Node, post


def test_health(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


NEBRASKA_CONFIG_KEYS = {  # Nebraska's spec.yaml `config` schema, by JSON name
    "access_management_url", "nebraska_version", "logo", "title", "header_style",
    "login_url", "auth_mode", "oidc_issuer_url", "oidc_client_id", "oidc_scopes",
    "oidc_logout_url", "oidc_audience",
}  # fmt: skip


def test_config_answers_without_a_token_in_nebraskas_shape(
    client: TestClient, data_dir: Path
) -> None:
    bare = TestClient(client.app)  # no Authorization header
    config = bare.get("/config").json()
    assert set(config) == NEBRASKA_CONFIG_KEYS
    assert config["auth_mode"] == "token" and config["login_url"] == "/sign-in"
    oidc = ConsoleSettings(
        auth=ConsoleAuth.OIDC,
        oidc=OidcSettings("https://idp.example", "wellcar-console", "secret-value", ("admin",)),
    )
    app = create_app(ServerSettings(data_dir=data_dir / "oidc", console=oidc))
    with TestClient(app) as c:
        config = c.get("/config").json()
    assert (config["auth_mode"], config["oidc_issuer_url"], config["oidc_client_id"]) == (
        "oidc", "https://idp.example", "wellcar-console"
    )  # fmt: skip
    assert "secret-value" not in str(config)  # the client secret never leaves the server
    lab = ConsoleSettings(auth=ConsoleAuth.LAB)
    with TestClient(create_app(ServerSettings(data_dir=data_dir / "lab", console=lab))) as c:
        assert c.get("/config").json()["auth_mode"] == "noop"


def test_metrics_reflect_the_fleet(client: TestClient) -> None:
    seed = Seed(client.app.state.engine)  # type: ignore[attr-defined]
    app = seed.app(canonical_uuid(FLATCAR_APP_ID), "Flatcar")
    seed.group(app, seed.channel(app, "stable", seed.package(app, "2.0.0")), "stable")
    for i in range(3):
        post(client, Node(f"m{i}", "1.0.0").check_request())
    post(client, Node("m9", "2.0.0").check_request())
    failing = Node("m0", "1.0.0")
    post(client, failing.event_request(3, 0, errorcode=44))
    client.post("/v1/update/", content=b"junk", headers={"Content-Type": "text/xml"})

    text = client.get("/metrics").text
    per_channel = 'wellcar_application_instances_per_channel{application="Flatcar",channel="stable"'
    assert f'{per_channel},version="1.0.0"}} 3.0' in text
    assert f'{per_channel},version="2.0.0"}} 1.0' in text
    assert 'wellcar_failed_updates{application="Flatcar"} 1.0' in text
    assert 'wellcar_omaha_rejected_requests_total{reason="not-xml"} 1.0' in text
    assert "wellcar_omaha_request_duration_seconds_count 5.0" in text


def test_tokens_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WELLCAR_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("WELLCAR_READ_TOKEN", raising=False)
    first = Tokens.load(tmp_path)
    assert first.admin.created and first.reader.created
    path = Path(first.admin.origin)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Tokens.load(tmp_path)
    assert not second.admin.created
    assert second.admin.token == first.admin.token != first.reader.token
    assert second.role_of(first.admin.token) is Role.ADMIN
    assert second.role_of(first.reader.token) is Role.READER
    assert second.role_of("guess") is None
    assert second.role_of(None) is None


def test_environment_tokens_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WELLCAR_ADMIN_TOKEN", "from-env")
    tokens = Tokens.load(tmp_path)
    assert tokens.admin.token == "from-env"
    assert tokens.admin.origin == "$WELLCAR_ADMIN_TOKEN"
    assert not (tmp_path / "admin-token").exists()
