"""Signing in with OpenID Connect against a real provider (panva's oidc-provider under node,
installed by scripts/setup.sh) on loopback: Authorization Code + PKCE, roles from a nested
claim (`--oidc-roles-path realm_access.roles`), an admin, a viewer and somebody with neither."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.loopback_ports import free_port
from tests.server.server_processes import serve_processes

from .conftest import ADMIN_TOKEN, READ_TOKEN

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = Path(__file__).parent / "oidc_provider" / "provider.mjs"
PROVIDER_MODULE = ROOT / "build/oidc-provider/node_modules/oidc-provider/lib/index.js"
CLIENT_ID = "wellcar-console"
ACCOUNTS = {
    "alice": {"realm_access": {"roles": ["fleet-admin", "staff"]}},
    "bob": {"realm_access": {"roles": ["fleet-viewer"]}},
    "eve": {"realm_access": {"roles": ["staff"]}},
}


@dataclass
class OidcFleet:
    url: str  # the console
    issuer: str


def _wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the OIDC provider exited: {err[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the OIDC provider at {url} did not come up")


@pytest.fixture(scope="module")
def oidc_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcFleet]:
    assert PROVIDER_MODULE.exists(), "the test OIDC provider is missing: run scripts/setup.sh"
    issuer = f"http://127.0.0.1:{free_port()}"
    args = (
        "--log-level", "warning", "--console-auth", "oidc", "--oidc-issuer-url", issuer,
        "--oidc-client-id", CLIENT_ID, "--oidc-admin-roles", "fleet-admin,ops",
        "--oidc-viewer-roles", "fleet-viewer", "--oidc-roles-path", "realm_access.roles",
    )  # fmt: skip
    env = {"WELLCAR_ADMIN_TOKEN": ADMIN_TOKEN, "WELLCAR_READ_TOKEN": READ_TOKEN}
    data_dir = tmp_path_factory.mktemp("oidc-console-server")
    # The server first: the provider must know the console's redirect URI, and the console
    # reads the provider's discovery document only when somebody signs in.
    with serve_processes(data_dir, 1, extra_env=env, log_args=args) as (url,):
        settings = {
            "module": str(PROVIDER_MODULE),
            "port": int(issuer.rsplit(":", 1)[1]),
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "redirect_uri": f"{url}/sign-in/oidc/callback",
            "accounts": ACCOUNTS,
        }
        proc = subprocess.Popen(
            ["node", str(PROVIDER_SCRIPT), json.dumps(settings)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(f"{issuer}/.well-known/openid-configuration", proc)
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert api.post("/api/apps", json={"name": "Fleet"}).status_code == 200
            yield OidcFleet(url, issuer)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def sign_in_at_provider(page: Page, fleet: OidcFleet, login: str) -> None:
    page.goto(f"{fleet.url}/")
    page.get_by_role("link", name="Sign in with OpenID Connect").click()
    page.wait_for_url(lambda u: u.startswith(fleet.issuer))
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password: development interactions")
    page.locator("button[type=submit]").click()
    # The provider asks to authorize the console (its consent page), once per account.
    consent = page.locator("button[type=submit]")
    if page.url.startswith(fleet.issuer) and consent.count():
        consent.first.click()


def test_an_admin_role_signs_in_as_admin(
    page: Page, oidc_fleet: OidcFleet, screenshots: Path
) -> None:
    sign_in_at_provider(page, oidc_fleet, "alice")
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    expect(page.get_by_test_id("who")).to_contain_text("alice")
    expect(page.get_by_test_id("who")).to_contain_text("admin")
    page.get_by_role("link", name="Fleet").click()
    expect(page.get_by_role("button", name="Create group")).to_be_enabled()
    page.screenshot(path=str(screenshots / "20-oidc-admin.png"), full_page=True)


def test_a_viewer_role_signs_in_as_viewer(page: Page, oidc_fleet: OidcFleet) -> None:
    sign_in_at_provider(page, oidc_fleet, "bob")
    expect(page.get_by_test_id("who")).to_contain_text("viewer")
    page.get_by_role("link", name="Fleet").click()
    expect(page.get_by_role("button", name="Create group")).to_be_disabled()


def test_somebody_without_either_role_is_refused(
    page: Page, oidc_fleet: OidcFleet, screenshots: Path
) -> None:
    sign_in_at_provider(page, oidc_fleet, "eve")
    error = page.get_by_test_id("sign-in-error")
    expect(error).to_contain_text("include neither an admin nor a viewer role")
    expect(error).to_contain_text("staff")
    page.screenshot(path=str(screenshots / "21-oidc-no-role.png"), full_page=True)
    page.goto(f"{oidc_fleet.url}/")
    expect(page.get_by_role("link", name="Sign in with OpenID Connect")).to_be_visible()


def test_a_callback_not_started_here_is_refused(oidc_fleet: OidcFleet) -> None:
    resp = httpx.get(f"{oidc_fleet.url}/sign-in/oidc/callback?code=stolen&state=guess")
    assert resp.status_code == 400
    assert "not started here" in resp.text
    assert "wellcar_console" not in resp.headers.get("set-cookie", "")
    # The token form is not there when people sign in with OIDC.
    assert httpx.post(f"{oidc_fleet.url}/sign-in", data={"token": ADMIN_TOKEN}).status_code == 404
