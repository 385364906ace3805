"""The fleet console's pages and forms, in process (the browser tests are tests/console/)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import wellcar.server.api.console as console_pkg
from wellcar.server.api.app import create_app
from wellcar.server.api.console.session import COOKIE
from wellcar.server.console_settings import ConsoleAuth, ConsoleSettings
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.server.settings import ServerSettings

from .api_support import Fleet, ok, seed_history, seed_instance
from .conftest import ADMIN_TOKEN, READ_TOKEN, FakeClock


@pytest.fixture
def fleet(client: TestClient, clock: FakeClock) -> Fleet:
    fleet = Fleet.build(client)
    seed_instance(fleet.engine, fleet, "m-old", version="1.0.0", seen=clock.now, alias="db-1")
    seed_instance(
        fleet.engine, fleet, "m-new", version="2.0.0", seen=clock.now, ip="10.0.0.9",
        status=InstanceStatus.COMPLETE,
    )  # fmt: skip
    seed_history(
        fleet.engine, fleet, "m-new", InstanceStatus.COMPLETE, "2.0.0",
        clock.now - timedelta(hours=5), previous_version="1.0.0",
    )  # fmt: skip
    return fleet


@pytest.fixture
def browser(client: TestClient) -> Iterator[TestClient]:
    """The same app as a browser sees it: no bearer token, cookies kept."""
    with TestClient(client.app, follow_redirects=False) as c:
        yield c


def sign_in(browser: TestClient, token: str) -> None:
    resp = browser.post("/sign-in", data={"token": token, "next": "/"})
    assert resp.status_code == 303, resp.text


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "page has no form token"
    return found.group(1)


def policy(client: TestClient, fleet: Fleet) -> dict[str, object]:
    body: dict[str, object] = ok(client.get(f"/api/apps/{fleet.app}/groups/{fleet.group}"))
    return body


def test_pages_need_a_sign_in_and_a_wrong_token_is_refused(
    browser: TestClient, fleet: Fleet
) -> None:
    resp = browser.get(f"/apps/{fleet.app}")
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/sign-in?next=/apps/{fleet.app}"
    resp = browser.post("/sign-in", data={"token": "guess", "next": "/"})
    assert resp.status_code == 401
    assert "not this server&#39;s admin or read-only token" in resp.text
    assert COOKIE not in browser.cookies


def test_signed_in_admin_walks_from_applications_to_an_instance_history(
    browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    apps = browser.get("/")
    assert apps.status_code == 200
    assert f'href="/apps/{fleet.app}"' in apps.text
    app = browser.get(f"/apps/{fleet.app}").text
    assert f'href="/apps/{fleet.app}/groups/{fleet.group}"' in app
    assert "2.0.0" in app and "stable" in app  # packages and channels
    group = browser.get(f"/apps/{fleet.app}/groups/{fleet.group}?period=1d").text
    assert 'id="chart-data"' in group
    assert '"label": "2.0.0"' in group  # the version timeline's data set
    listing = browser.get(f"/apps/{fleet.app}/groups/{fleet.group}/instances?q=db-").text
    assert "1 instance," in listing and "m-old" in listing and "m-new" not in listing
    listing = browser.get(f"/apps/{fleet.app}/groups/{fleet.group}/instances?status=4").text
    assert "m-new" in listing and "m-old" not in listing
    instance = browser.get(f"/apps/{fleet.app}/groups/{fleet.group}/instances/m-new").text
    assert "10.0.0.9" in instance
    assert re.search(r"<td>Complete</td><td>2\.0\.0</td>", instance)


def test_bad_policy_values_show_the_api_error_next_to_the_field_and_save_nothing(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    url = f"/apps/{fleet.app}/groups/{fleet.group}"
    before = policy(client, fleet)
    form = {
        "csrf": csrf_of(browser.get(url).text),
        "name": "Stable",
        "policy_max_updates_per_period": "lots",
        "policy_period_interval": "15 minutes",
        "policy_update_timeout": "60 minutes",
        "policy_office_hours_spec": "mon-fri 09:00-17:00",
        "policy_timezone": "",
    }
    resp = browser.post(url, data=form)
    assert resp.status_code == 400
    api = client.put("/api" + url, json={"policy_max_updates_per_period": "lots"})
    api_message = api.json()["error"]
    assert 'id="policy_max_updates_per_period-error"' in resp.text
    assert api_message.replace("'", "&#39;") in resp.text
    assert 'value="lots"' in resp.text  # what was typed stays in the form

    form.update(policy_max_updates_per_period="5", policy_office_hours="on")
    resp = browser.post(url, data={**form, "policy_timezone": "Mars/Olympus"})
    assert resp.status_code == 400
    assert 'id="policy_timezone-error"' in resp.text
    assert "unknown time zone" in resp.text
    assert policy(client, fleet) == before


def test_a_good_policy_is_saved_through_the_api_data_layer(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    url = f"/apps/{fleet.app}/groups/{fleet.group}"
    form = {
        "csrf": csrf_of(browser.get(url).text),
        "name": "Stable",
        "channel_id": fleet.channel,
        "track": "stable",
        "policy_updates_enabled": "on",
        "policy_max_updates_per_period": "7",
        "policy_period_interval": "1 hour",
        "policy_update_timeout": "2 hours",
        "policy_office_hours": "on",
        "policy_office_hours_spec": "mon-fri 08:00-18:00",
        "policy_timezone": "Europe/Berlin",
    }
    resp = browser.post(url, data=form)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{url}?saved=1"
    saved = policy(client, fleet)
    assert saved["policy_max_updates_per_period"] == 7
    assert saved["policy_safe_mode"] is False  # unticked
    assert saved["policy_timezone"] == "Europe/Berlin"
    assert saved["policy_office_hours_spec"] == "mon-fri 08:00-18:00"
    assert "Saved." in browser.get(resp.headers["location"]).text

    pause = browser.post(f"{url}/pause", data={"csrf": form["csrf"]})
    assert pause.status_code == 303
    assert policy(client, fleet)["policy_updates_enabled"] is False


def test_creating_a_group_and_a_duplicate_name(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    token = csrf_of(browser.get(f"/apps/{fleet.app}").text)
    resp = browser.post(
        f"/apps/{fleet.app}/groups",
        data={"csrf": token, "name": "Canary", "channel_id": fleet.channel, "track": ""},
    )
    assert resp.status_code == 303
    groups = ok(client.get(f"/api/apps/{fleet.app}/groups"))["groups"]
    assert sorted(g["name"] for g in groups) == ["Canary", "Stable"]
    again = browser.post(f"/apps/{fleet.app}/groups", data={"csrf": token, "name": "Canary"})
    assert again.status_code == 409  # as the API answers
    assert 'id="name-error"' in again.text
    assert len(ok(client.get(f"/api/apps/{fleet.app}/groups"))["groups"]) == 2


def test_viewer_sees_but_cannot_change(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, READ_TOKEN)
    url = f"/apps/{fleet.app}/groups/{fleet.group}"
    page = browser.get(url).text
    assert "<strong>viewer</strong>" in page
    assert "<fieldset disabled>" in page
    resp = browser.post(f"{url}/pause", data={"csrf": csrf_of(page)})
    assert resp.status_code == 403
    assert policy(client, fleet)["policy_updates_enabled"] is True


def test_forms_without_the_token_or_from_another_site_are_refused(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    url = f"/apps/{fleet.app}/groups/{fleet.group}"
    token = csrf_of(browser.get(url).text)
    assert browser.post(f"{url}/pause", data={}).status_code == 403
    other = browser.post(
        f"{url}/pause", data={"csrf": token}, headers={"Origin": "http://evil.test"}
    )
    assert other.status_code == 403
    assert policy(client, fleet)["policy_updates_enabled"] is True


def test_a_forged_or_expired_session_is_refused(
    browser: TestClient, fleet: Fleet, clock: FakeClock
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    value = browser.cookies[COOKIE]
    payload, signature = value.split(".")
    browser.cookies.set(COOKIE, payload + "." + signature[::-1])
    assert browser.get("/").status_code == 303
    browser.cookies.set(COOKIE, value)
    assert browser.get("/").status_code == 200
    clock.advance(hours=13)
    assert browser.get("/").status_code == 303


def test_lab_mode_says_so_on_every_page(data_dir: Path, clock: FakeClock) -> None:
    app = create_app(
        ServerSettings(data_dir=data_dir, console=ConsoleSettings(ConsoleAuth.LAB)), clock=clock
    )
    with TestClient(app, follow_redirects=False) as c:
        fleet = Fleet.build(TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}))
        group = f"/apps/{fleet.app}/groups/{fleet.group}"
        for path in ("/", f"/apps/{fleet.app}", group, f"{group}/instances", "/apps/nope"):
            page = c.get(path)
            assert 'data-testid="lab-banner"' in page.text, path
        assert c.get("/apps/nope").status_code == 404


def test_unknown_things_and_bad_filters_are_pages_not_tracebacks(
    browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    assert browser.get(f"/apps/{fleet.app}/groups/nope").status_code == 404
    assert browser.get(f"/apps/{fleet.app}/groups/{fleet.group}?period=2y").status_code == 400
    resp = browser.get(f"/apps/{fleet.app}/groups/{fleet.group}/instances?status=99")
    assert resp.status_code == 400
    assert "<h1>Bad request</h1>" in resp.text


def test_sign_in_goes_back_only_to_this_server(browser: TestClient, fleet: Fleet) -> None:
    resp = browser.post("/sign-in", data={"token": ADMIN_TOKEN, "next": "//evil.test/x"})
    assert resp.headers["location"] == "/"


def test_vendored_chart_library_matches_its_record() -> None:
    vendor = Path(console_pkg.__file__).parent / "static" / "vendor"
    record = dict(
        line.split("=", 1)
        for line in (vendor / "VENDORED").read_text().splitlines()
        if line and not line.startswith("#")
    )
    digest = hashlib.sha256((vendor / "chart.umd.min.js").read_bytes()).hexdigest()
    assert digest == record["sha256"]
    assert (vendor / "chart.js.LICENSE.md").read_text().startswith("The MIT License")


def test_reboot_slots_show_who_holds_them(browser: TestClient, fleet: Fleet) -> None:
    sign_in(browser, ADMIN_TOKEN)
    assert "No node has asked" in browser.get("/reboots").text
    body = {"client_params": {"id": "node-7", "group": "workers"}}
    lock = browser.post("/v1/pre-reboot", json=body, headers={"fleet-lock-protocol": "true"})
    assert lock.status_code == 200, lock.text
    page = browser.get("/reboots").text
    assert re.search(r"<td>workers</td>\s*<td>1 <span", page)
    assert "<code>node-7</code> since" in page


def test_creating_channels_and_refusing_bad_ones(
    client: TestClient, browser: TestClient, fleet: Fleet
) -> None:
    sign_in(browser, ADMIN_TOKEN)
    url = f"/apps/{fleet.app}/channels"
    token = csrf_of(browser.get(f"/apps/{fleet.app}").text)
    good = browser.post(url, data={"csrf": token, "name": "beta", "color": "#123456",
                                   "arch": "2", "package_id": ""})  # fmt: skip
    assert good.status_code == 303
    listed = ok(client.get(f"/api/apps/{fleet.app}/channels"))["channels"]
    assert {(c["name"], c["arch"]) for c in listed} == {("stable", 1), ("beta", 2)}

    bad_arch = browser.post(url, data={"csrf": token, "name": "edge", "arch": "9"})
    assert bad_arch.status_code == 400
    assert 'id="channel-arch-error"' in bad_arch.text
    assert "arch: Input should be less than or equal to 3" in bad_arch.text
    # A package of another arch: the data layer's message, next to the package field.
    wrong = browser.post(url, data={"csrf": token, "name": "edge", "arch": "2",
                                    "package_id": fleet.pkg})  # fmt: skip
    assert wrong.status_code == 400
    assert 'id="channel-package_id-error"' in wrong.text
    assert len(ok(client.get(f"/api/apps/{fleet.app}/channels"))["channels"]) == 2
