"""/api/apps/{app}/packages: every field round-trips, semver, sizes, blacklists, deletion."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from .api_support import Fleet, create_package, error_of, ok, sha256_b64


@pytest.fixture
def fleet(client: TestClient) -> Fleet:
    return Fleet.build(client)


def pkgs_url(fleet: Fleet) -> str:
    return f"/api/apps/{fleet.app}/packages"


def test_round_trip_of_every_field(client: TestClient, fleet: Fleet) -> None:
    beta = ok(client.post(f"/api/apps/{fleet.app}/channels", json={"name": "beta"}))["id"]
    body: dict[str, Any] = {
        "type": 1,
        "version": "3815.2.0-rc.1",
        "url": "https://update.example/3815.2.0/",
        "filename": "flatcar_production_update.gz",
        "description": "LTS candidate",
        "size": "465881871",
        "hash": "r3nkJqZ6uJ0VQ7d1mQ==",
        "arch": 1,
        "channels_blacklist": [beta],
        "flatcar_action": {
            "sha256": sha256_b64("payload"),
            "event": "postinstall",
            "chromeos_version": "",
            "needs_admin": True,
            "is_delta": False,
            "disable_payload_backoff": False,
            "metadata_signature_rsa": "sig",
            "metadata_size": "190",
            "deadline": "now",
        },
    }
    created = ok(client.post(pkgs_url(fleet), json=body))
    fetched = ok(client.get(f"{pkgs_url(fleet)}/{created['id']}"))
    assert created == fetched
    for key in ("type", "version", "url", "filename", "description", "size", "hash", "arch"):
        assert fetched[key] == body[key], key
    assert fetched["channels_blacklist"] == [beta]
    assert fetched["application_id"] == fleet.app
    assert fetched["created_ts"] == "2026-11-18T10:00:00Z"
    action = fetched["flatcar_action"]
    for key, value in body["flatcar_action"].items():
        assert action[key] == value, key
    assert action["created_ts"] == "2026-11-18T10:00:00Z" and action["id"]


def test_size_accepts_number_or_string_and_is_sent_as_string(
    client: TestClient, fleet: Fleet
) -> None:
    a = ok(client.post(pkgs_url(fleet), json={"version": "5.0.0", "url": "u", "size": 123}))
    assert a["size"] == "123"
    b = ok(
        client.post(
            pkgs_url(fleet),
            json={"version": "5.0.1", "url": "u", "size": "", "channels_blacklist": None},
        )
    )
    assert b["size"] is None and b["flatcar_action"] is None and b["arch"] == 1 and b["type"] == 1
    for bad in ("12kb", -1, "1.5", True):
        assert "size" in error_of(
            client.post(pkgs_url(fleet), json={"version": "5.0.2", "url": "u", "size": bad}), 400
        )


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"version": "3815.2"}, "version"),
        ({"version": "v1.0.0"}, "version"),
        ({"version": ""}, "version"),
        ({"url": ""}, "url"),
        ({"type": 5}, "type"),
        ({"arch": 4}, "arch"),
        ({"flatcar_action": {"sha256": "deadbeef"}}, "sha256"),
        ({"flatcar_action": {}}, "sha256"),
        ({"channels_blacklist": ["nope"]}, "channels_blacklist"),
    ],
)
def test_invalid_package_is_400_naming_the_field(
    client: TestClient, fleet: Fleet, patch: dict[str, Any], field: str
) -> None:
    body = {"version": "4.0.0", "url": "https://x/", **patch}
    assert field in error_of(client.post(pkgs_url(fleet), json=body), 400)
    assert ok(client.get(pkgs_url(fleet)))["totalCount"] == 2


def test_duplicate_version_per_arch_is_409(client: TestClient, fleet: Fleet) -> None:
    assert "2.0.0" in error_of(
        client.post(pkgs_url(fleet), json={"version": "2.0.0", "url": "u"}), 409
    )
    ok(client.post(pkgs_url(fleet), json={"version": "2.0.0", "url": "u", "arch": 2}))
    error_of(client.put(f"{pkgs_url(fleet)}/{fleet.old_pkg}", json={"version": "2.0.0"}), 409)


def test_list_is_newest_semver_first_with_search(client: TestClient, fleet: Fleet) -> None:
    for v in ("10.0.0", "9.1.0", "2.0.0-beta.1", "2.0.1"):
        create_package(client, fleet.app, v)
    page = ok(client.get(pkgs_url(fleet)))
    assert [p["version"] for p in page["packages"]] == [
        "10.0.0", "9.1.0", "2.0.1", "2.0.0", "2.0.0-beta.1", "1.0.0",
    ]  # fmt: skip
    assert page["totalCount"] == 6
    page = ok(client.get(pkgs_url(fleet), params={"perpage": 2, "page": 2}))
    assert [p["version"] for p in page["packages"]] == ["2.0.1", "2.0.0"]
    assert page["totalCount"] == 6 and page["count"] == 2
    found = ok(client.get(pkgs_url(fleet), params={"searchVersion": "2.0"}))
    assert found["totalCount"] == 3
    assert ok(client.get(pkgs_url(fleet), params={"searchVersion": "%"}))["totalCount"] == 0


def test_update_merges_and_keeps_arch(client: TestClient, fleet: Fleet) -> None:
    url = f"{pkgs_url(fleet)}/{fleet.old_pkg}"
    before = ok(client.get(url))
    after = ok(client.put(url, json={"description": "old", "size": 77}))
    assert after["description"] == "old" and after["size"] == "77"
    assert after["url"] == before["url"] and after["hash"] == before["hash"]
    assert after["flatcar_action"]["sha256"] == before["flatcar_action"]["sha256"]
    new_sha = sha256_b64("other")
    after = ok(client.put(url, json={"flatcar_action": {"sha256": new_sha}}))
    assert after["flatcar_action"]["sha256"] == new_sha
    assert after["flatcar_action"]["id"] == before["flatcar_action"]["id"]
    assert "arch" in error_of(client.put(url, json={"arch": 2}), 400)
    ok(client.put(url, json={"arch": 1}))


def test_blacklist_rules(client: TestClient, fleet: Fleet) -> None:
    # the channel serving the package cannot blacklist it
    msg = error_of(
        client.put(f"{pkgs_url(fleet)}/{fleet.pkg}", json={"channels_blacklist": [fleet.channel]}),
        409,
    )
    assert "stable" in msg
    url = f"{pkgs_url(fleet)}/{fleet.old_pkg}"
    assert ok(client.put(url, json={"channels_blacklist": [fleet.channel]}))[
        "channels_blacklist"
    ] == [fleet.channel]
    assert ok(client.put(url, json={"description": "x"}))["channels_blacklist"] == [fleet.channel]
    assert ok(client.put(url, json={"channels_blacklist": []}))["channels_blacklist"] == []
    arm_ch = ok(client.post(f"/api/apps/{fleet.app}/channels", json={"name": "arm", "arch": 2}))[
        "id"
    ]
    assert "arch" in error_of(client.put(url, json={"channels_blacklist": [arm_ch]}), 400)


def test_delete_rules(client: TestClient, fleet: Fleet) -> None:
    msg = error_of(client.delete(f"{pkgs_url(fleet)}/{fleet.pkg}"), 409)
    assert "stable" in msg
    assert client.delete(f"{pkgs_url(fleet)}/{fleet.old_pkg}").status_code == 204
    error_of(client.get(f"{pkgs_url(fleet)}/{fleet.old_pkg}"), 404)
    error_of(client.delete(f"{pkgs_url(fleet)}/{fleet.old_pkg}"), 404)
    other = ok(client.post("/api/apps", json={"name": "o"}))["id"]
    error_of(client.get(f"/api/apps/{other}/packages/{fleet.pkg}"), 404)
