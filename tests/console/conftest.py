"""A real `wellcar serve` on loopback with a seeded fleet, and Debian's chromium under Playwright.

The fleet is made the way a real one is: apps, packages, channels and groups through the
REST API, instances by update_engine-shaped Omaha check-ins (tests/server/omaha_client)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.server.omaha_client import Node, post
from tests.server.server_processes import serve_processes
from wellcar.omaha import FLATCAR_APP_ID

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own download is not used
ADMIN_TOKEN = "console-admin-token"
READ_TOKEN = "console-read-token"
NODES = 24
OLD, NEW = "1.0.0", "2.0.0"


@dataclass
class ServedFleet:
    url: str
    api: httpx.Client  # the REST API with the admin token
    omaha: httpx.Client
    app: str
    channel: str
    group: str  # "Stable", created with updates paused
    nodes: list[Node]

    def update_node(self, node: Node) -> None:
        """One node through a whole update, as update_engine reports it."""
        answer = post(self.omaha, node.check_request())  # type: ignore[arg-type]
        assert answer.updatecheck is not None and answer.updatecheck.status == "ok", answer
        for etype, result in ((13, 1), (14, 1), (3, 1)):
            post(self.omaha, node.event_request(etype, result))  # type: ignore[arg-type]
        node.version = NEW
        post(self.omaha, node.check_request(previous_version=OLD))  # type: ignore[arg-type]


def _ok(resp: httpx.Response) -> Any:
    assert resp.is_success, resp.text
    return resp.json()


def _package(api: httpx.Client, app: str, version: str) -> str:
    digest = base64.b64encode(hashlib.sha256(version.encode()).digest()).decode()
    body = {
        "version": version,
        "url": f"http://127.0.0.1:9/{version}/",
        "filename": "wellcar_update.gz",
        "size": "1000",
        "hash": "c2hhMQ==",
        "flatcar_action": {"sha256": digest},
    }
    package_id: str = _ok(api.post(f"/api/apps/{app}/packages", json=body))["id"]
    return package_id


@pytest.fixture(scope="module")
def served_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFleet]:
    data_dir = tmp_path_factory.mktemp("console-server")
    env = {"WELLCAR_ADMIN_TOKEN": ADMIN_TOKEN, "WELLCAR_READ_TOKEN": READ_TOKEN}
    with serve_processes(data_dir, 1, extra_env=env) as (url,):
        api = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        omaha = httpx.Client(base_url=url, timeout=30)
        app = _ok(api.post("/api/apps", json={"id": FLATCAR_APP_ID, "name": "Flatcar"}))["id"]
        _package(api, app, OLD)
        new = _package(api, app, NEW)
        channel = _ok(
            api.post(f"/api/apps/{app}/channels", json={"name": "stable", "package_id": new})
        )["id"]
        group = _ok(
            api.post(
                f"/api/apps/{app}/groups",
                json={
                    "name": "Stable",
                    "channel_id": channel,
                    "track": "stable",
                    "policy_updates_enabled": False,
                    "policy_safe_mode": False,
                    "policy_max_updates_per_period": 1000,
                },
            )
        )["id"]
        nodes = [Node(f"node-{i:02}", OLD, alias=f"web-{i:02}") for i in range(NODES)]
        for node in nodes:  # they register, and hear that updates are paused (as Nebraska)
            answer = post(omaha, node.check_request())  # type: ignore[arg-type]
            assert answer.status == "error-updatesDisabled"
        try:
            yield ServedFleet(url, api, omaha, app, channel, group, nodes)
        finally:
            api.close()
            omaha.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/setup.sh"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each page's screenshot is kept (the test's artefacts, under pytest's tmp dir)."""
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
