"""The console's ID-token checks: forged, expired, wrongly addressed tokens are refused.

The issuer is a real HTTP server on loopback publishing its discovery document and JWKS
for a key this test makes, so tokens can be signed (and forged) at will; the full sign-in
against a real provider is tests/console/test_console_oidc.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from wellcar.cli.main import app as cli
from wellcar.server.api.console.oidc import OidcClient, OidcError, claim_at, role_for
from wellcar.server.auth import Role
from wellcar.server.console_settings import ConsoleAuth, ConsoleSettings, OidcSettings
from wellcar.server.errors import ConfigError

CLIENT = "wellcar-console"
NONCE = "the-nonce"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    documents: dict[str, Any] = {"/jwks": {"keys": [jwk]}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(documents[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/.well-known/openid-configuration"] = {
        "issuer": url,
        "authorization_endpoint": f"{url}/auth",
        "token_endpoint": f"{url}/token",
        "jwks_uri": f"{url}/jwks",
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()


def client_for(issuer: str) -> OidcClient:
    return OidcClient(OidcSettings(issuer, CLIENT, admin_roles=("ops",), viewer_roles=("dev",)))


def token(issuer: str, key: Any = KEY, alg: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": CLIENT, "sub": "alice", "iat": now, "exp": now + 300,
              "nonce": NONCE, "roles": ["ops"], **changes}  # fmt: skip
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})


def test_a_good_token_gives_its_claims(issuer: str) -> None:
    claims = client_for(issuer).verify_id_token(token(issuer), NONCE)
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("forged", "Signature verification failed"),
        ("expired", "Signature has expired"),
        ("audience", "Audience doesn't match"),
        ("issuer", "Invalid issuer"),
        ("nonce", "nonce is not this sign-in's"),
        ("none", "not valid"),
        ("hmac", "not valid"),
    ],
)
def test_bad_tokens_are_refused(issuer: str, case: str, message: str) -> None:
    bad = {
        "forged": lambda: token(issuer, key=OTHER_KEY),
        "expired": lambda: token(issuer, exp=int(time.time()) - 600),
        "audience": lambda: token(issuer, aud="somebody-else"),
        "issuer": lambda: token(issuer, iss="http://127.0.0.1:1"),
        "nonce": lambda: token(issuer, nonce="replayed"),
        "none": lambda: token(issuer, key=None, alg="none"),
        # A symmetric algorithm under the provider's key id: only asymmetric ones are taken.
        "hmac": lambda: jwt.api_jws.PyJWS().encode(
            json.dumps(
                {"iss": issuer, "aud": CLIENT, "sub": "x", "iat": 1, "exp": 2**40, "nonce": NONCE}
            ).encode(),
            key=b"k" * 32,
            algorithm="HS256",
            headers={"kid": "k1"},
        ),
    }[case]()
    with pytest.raises(OidcError, match=message):
        client_for(issuer).verify_id_token(bad, NONCE)


def test_roles_from_a_claim_path() -> None:
    settings = OidcSettings("http://x", CLIENT, admin_roles=("ops",), viewer_roles=("dev",),
                            roles_path="realm_access.roles")  # fmt: skip
    assert claim_at({"realm_access": {"roles": ["a"]}}, "realm_access.roles") == ["a"]
    assert claim_at({"realm_access": "flat"}, "realm_access.roles") is None
    assert role_for({"realm_access": {"roles": ["dev", "ops"]}}, settings) is Role.ADMIN
    assert role_for({"realm_access": {"roles": "dev"}}, settings) is Role.READER
    with pytest.raises(OidcError, match=r"\(none\)"):
        role_for({"roles": ["ops"]}, settings)


def test_settings_are_checked_and_travel_to_workers() -> None:
    with pytest.raises(ConfigError, match="--oidc-admin-roles or --oidc-viewer-roles"):
        ConsoleSettings(ConsoleAuth.OIDC, OidcSettings("https://id.test", CLIENT)).check()
    with pytest.raises(ConfigError, match="not an http"):
        ConsoleSettings(ConsoleAuth.OIDC, OidcSettings("id.test", CLIENT, ("a",))).check()
    settings = ConsoleSettings(
        ConsoleAuth.OIDC, OidcSettings("https://id.test", CLIENT, "s", ("a", "b"), ("c",))
    )
    assert ConsoleSettings.from_json(settings.to_json()) == settings


def test_serve_refuses_oidc_without_roles_in_one_line(tmp_path: Any) -> None:
    result = CliRunner().invoke(
        cli,
        ["serve", "--data-dir", str(tmp_path), "--console-auth", "oidc",
         "--oidc-issuer-url", "https://id.test", "--oidc-client-id", CLIENT],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--oidc-admin-roles or --oidc-viewer-roles is required" in result.output
    assert "Traceback" not in result.output
