"""/api/apps/{app}/groups: Nebraska's defaults and policy validation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from .api_support import Fleet, error_of, ok


@pytest.fixture
def fleet(client: TestClient) -> Fleet:
    return Fleet.build(client)


def groups_url(fleet: Fleet) -> str:
    return f"/api/apps/{fleet.app}/groups"


def test_defaults_track_is_group_id_and_safe_mode_on(client: TestClient, fleet: Fleet) -> None:
    g = ok(client.post(groups_url(fleet), json={"name": "beta"}))
    assert g["track"] == g["id"]
    assert g["policy_safe_mode"] is True and g["policy_updates_enabled"] is True
    assert g["policy_office_hours"] is False and g["policy_timezone"] is None
    assert g["policy_period_interval"] == "15 minutes"
    assert g["policy_max_updates_per_period"] == 2
    assert g["policy_update_timeout"] == "60 minutes"
    assert g["policy_office_hours_spec"] == "mon-fri 09:00-17:00"
    assert g["channel_id"] is None and g["channel"] is None
    assert g["rollout_in_progress"] is False and g["application_id"] == fleet.app


def test_round_trip_of_every_field(client: TestClient, fleet: Fleet) -> None:
    body: dict[str, Any] = {
        "name": "edge",
        "description": "early adopters",
        "channel_id": fleet.channel,
        "track": "edge-track",
        "policy_updates_enabled": False,
        "policy_safe_mode": False,
        "policy_office_hours": True,
        "policy_timezone": "Europe/Berlin",
        "policy_period_interval": "2 hours",
        "policy_max_updates_per_period": 7,
        "policy_update_timeout": "30 minutes",
        "policy_office_hours_spec": "sat-sun 00:00-24:00",
    }
    created = ok(client.post(groups_url(fleet), json=body))
    fetched = ok(client.get(f"{groups_url(fleet)}/{created['id']}"))
    assert created == fetched
    for key, value in body.items():
        assert fetched[key] == value, key
    assert fetched["channel"]["id"] == fleet.channel
    assert fetched["channel"]["package"]["version"] == "2.0.0"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"policy_period_interval": "soon"}, "policy_period_interval"),
        ({"policy_update_timeout": "0 minutes"}, "policy_update_timeout"),
        ({"policy_max_updates_per_period": 0}, "policy_max_updates_per_period"),
        ({"policy_max_updates_per_period": "many"}, "policy_max_updates_per_period"),
        ({"policy_office_hours": True}, "policy_timezone"),
        ({"policy_timezone": "Mars/Olympus"}, "policy_timezone"),
        ({"policy_office_hours_spec": "weekdays"}, "policy_office_hours_spec"),
        ({"channel_id": "00000000-0000-0000-0000-000000000000"}, "channel_id"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"policy_safe_mode": "perhaps"}, "policy_safe_mode"),
    ],
)
def test_invalid_policy_is_400_naming_the_field(
    client: TestClient, fleet: Fleet, patch: dict[str, Any], field: str
) -> None:
    body = {"name": "bad", **patch}
    assert field in error_of(client.post(groups_url(fleet), json=body), 400)
    # the same mistake through PUT, on an existing group
    assert field in error_of(client.put(f"{groups_url(fleet)}/{fleet.group}", json=patch), 400)
    assert len(ok(client.get(groups_url(fleet)))["groups"]) == 1


def test_channel_of_another_app_is_refused(client: TestClient, fleet: Fleet) -> None:
    other = ok(client.post("/api/apps", json={"name": "other"}))["id"]
    ch = ok(client.post(f"/api/apps/{other}/channels", json={"name": "stable"}))["id"]
    assert "channel_id" in error_of(
        client.post(groups_url(fleet), json={"name": "g", "channel_id": ch}), 400
    )


def test_duplicate_name_is_409_create_and_rename(client: TestClient, fleet: Fleet) -> None:
    assert "Stable" in error_of(client.post(groups_url(fleet), json={"name": "Stable"}), 409)
    other = ok(client.post(groups_url(fleet), json={"name": "Beta"}))
    error_of(client.put(f"{groups_url(fleet)}/{other['id']}", json={"name": "Stable"}), 409)
    # the same name in another application is fine
    app2 = ok(client.post("/api/apps", json={"name": "two"}))["id"]
    ok(client.post(f"/api/apps/{app2}/groups", json={"name": "Stable"}))


def test_update_merges_and_validates_the_result(client: TestClient, fleet: Fleet) -> None:
    url = f"{groups_url(fleet)}/{fleet.group}"
    g = ok(client.put(url, json={"policy_max_updates_per_period": 9}))
    assert g["policy_max_updates_per_period"] == 9
    assert g["channel_id"] == fleet.channel and g["track"] == "stable" and g["name"] == "Stable"
    # office hours on needs the zone: sending both works, then turning the zone off fails
    g = ok(client.put(url, json={"policy_office_hours": True, "policy_timezone": "Asia/Tokyo"}))
    assert g["policy_office_hours"] is True and g["policy_timezone"] == "Asia/Tokyo"
    assert "policy_timezone" in error_of(client.put(url, json={"policy_timezone": None}), 400)
    g = ok(client.put(url, json={"track": ""}))
    assert g["track"] == fleet.group
    g = ok(client.put(url, json={"channel_id": None}))
    assert g["channel_id"] is None and g["channel"] is None


def test_list_paging_and_delete(client: TestClient, fleet: Fleet) -> None:
    for i in range(11):
        ok(client.post(groups_url(fleet), json={"name": f"g{i}"}))
    page = ok(client.get(groups_url(fleet)))
    assert page["totalCount"] == 12 and page["count"] == 10
    assert ok(client.get(groups_url(fleet), params={"page": 2}))["count"] == 2
    assert client.delete(f"{groups_url(fleet)}/{fleet.group}").status_code == 204
    error_of(client.get(f"{groups_url(fleet)}/{fleet.group}"), 404)
    error_of(client.delete(f"{groups_url(fleet)}/{fleet.group}"), 404)
    # a group id of another application is not found under this one
    app2 = ok(client.post("/api/apps", json={"name": "two"}))["id"]
    g2 = ok(client.post(f"/api/apps/{app2}/groups", json={"name": "x"}))["id"]
    error_of(client.get(f"{groups_url(fleet)}/{g2}"), 404)
    error_of(client.put(f"{groups_url(fleet)}/{g2}", json={"name": "y"}), 404)
