"""/api/apps/{app}/channels and floors: arch and blacklist rules, activity on package change."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from wellcar.server.fleet_codes import ActivityClass, Severity

from .api_support import Fleet, create_package, error_of, ok
from .conftest import FakeClock


@pytest.fixture
def fleet(client: TestClient) -> Fleet:
    return Fleet.build(client)


def channels_url(fleet: Fleet) -> str:
    return f"/api/apps/{fleet.app}/channels"


def test_round_trip_and_defaults(client: TestClient, fleet: Fleet) -> None:
    ch = ok(
        client.post(
            channels_url(fleet),
            json={"name": "beta", "color": "#ff0000", "arch": 1, "package_id": fleet.old_pkg},
        )
    )
    assert ch == ok(client.get(f"{channels_url(fleet)}/{ch['id']}"))
    assert (ch["name"], ch["color"], ch["arch"]) == ("beta", "#ff0000", 1)
    assert ch["application_id"] == fleet.app and ch["created_ts"] == "2026-11-18T10:00:00Z"
    assert ch["package_id"] == fleet.old_pkg and ch["package"]["version"] == "1.0.0"
    bare = ok(client.post(channels_url(fleet), json={"name": "alpha"}))
    assert (bare["arch"], bare["color"], bare["package_id"], bare["package"]) == (1, "", None, None)


def test_package_arch_must_match_or_be_all(client: TestClient, fleet: Fleet) -> None:
    arm = create_package(client, fleet.app, "2.0.0", arch=2)
    universal = create_package(client, fleet.app, "2.1.0", arch=0)
    msg = error_of(client.post(channels_url(fleet), json={"name": "x", "package_id": arm}), 400)
    assert "arch" in msg and "package_id" in msg
    arm_ch = ok(client.post(channels_url(fleet), json={"name": "x", "arch": 2, "package_id": arm}))
    ok(client.put(f"{channels_url(fleet)}/{arm_ch['id']}", json={"package_id": universal}))
    error_of(client.put(f"{channels_url(fleet)}/{fleet.channel}", json={"package_id": arm}), 400)
    assert "arch" in error_of(
        client.put(f"{channels_url(fleet)}/{fleet.channel}", json={"arch": 2}), 400
    )


def test_blacklisted_package_is_refused(client: TestClient, fleet: Fleet) -> None:
    pkg = create_package(client, fleet.app, "3.0.0", channels_blacklist=[fleet.channel])
    msg = error_of(
        client.put(f"{channels_url(fleet)}/{fleet.channel}", json={"package_id": pkg}), 400
    )
    assert "blacklist" in msg
    assert ok(client.get(f"{channels_url(fleet)}/{fleet.channel}"))["package_id"] == fleet.pkg


def test_package_of_another_app_or_unknown_is_refused(client: TestClient, fleet: Fleet) -> None:
    other = ok(client.post("/api/apps", json={"name": "other"}))["id"]
    foreign = create_package(client, other, "9.0.0")
    for pkg in (foreign, "no-such-package"):
        assert "package_id" in error_of(
            client.put(f"{channels_url(fleet)}/{fleet.channel}", json={"package_id": pkg}), 400
        )


def test_package_change_is_logged_as_activity(
    client: TestClient, fleet: Fleet, clock: FakeClock
) -> None:
    url = f"{channels_url(fleet)}/{fleet.channel}"
    clock.advance(minutes=5)
    ch = ok(client.put(url, json={"package_id": fleet.old_pkg}))
    assert ch["package"]["version"] == "1.0.0"
    feed = ok(client.get("/api/activity"))
    assert feed["totalCount"] == 1
    entry = feed["activities"][0]
    assert entry["class"] == ActivityClass.CHANNEL_PACKAGE_UPDATED
    assert entry["severity"] == Severity.INFO
    assert entry["version"] == "1.0.0"
    assert entry["channel_id"] == fleet.channel and entry["channel_name"] == "stable"
    assert entry["app_id"] == fleet.app and entry["application_name"] == "Flatcar"
    assert entry["group_id"] is None and entry["group_name"] is None
    assert entry["created_ts"] == "2026-11-18T10:05:00Z"
    # same package again, a rename, or emptying the channel: no new entry
    ok(client.put(url, json={"package_id": fleet.old_pkg}))
    ok(client.put(url, json={"name": "stable2", "color": "blue"}))
    ok(client.put(url, json={"package_id": ""}))
    assert ok(client.get("/api/activity"))["totalCount"] == 1
    ok(client.put(url, json={"package_id": fleet.pkg}))
    assert ok(client.get("/api/activity"))["activities"][0]["version"] == "2.0.0"


def test_duplicate_name_per_arch_is_409(client: TestClient, fleet: Fleet) -> None:
    error_of(client.post(channels_url(fleet), json={"name": "stable"}), 409)
    ok(client.post(channels_url(fleet), json={"name": "stable", "arch": 2}))
    beta = ok(client.post(channels_url(fleet), json={"name": "beta"}))
    error_of(client.put(f"{channels_url(fleet)}/{beta['id']}", json={"name": "stable"}), 409)


def test_list_by_name_and_delete_detaches_groups(client: TestClient, fleet: Fleet) -> None:
    for name in ("zeta", "alpha"):
        ok(client.post(channels_url(fleet), json={"name": name}))
    page = ok(client.get(channels_url(fleet)))
    assert page["totalCount"] == 3
    assert [c["name"] for c in page["channels"]] == ["alpha", "stable", "zeta"]
    assert client.delete(f"{channels_url(fleet)}/{fleet.channel}").status_code == 204
    group = ok(client.get(f"/api/apps/{fleet.app}/groups/{fleet.group}"))
    assert group["channel_id"] is None and group["channel"] is None
    error_of(client.delete(f"{channels_url(fleet)}/{fleet.channel}"), 404)


def test_floors_add_list_update_remove(client: TestClient, fleet: Fleet) -> None:
    mid = create_package(client, fleet.app, "1.5.0")
    base = f"/api/channels/{fleet.channel}/floors"
    floor = ok(client.post(f"{base}/{mid}", json={"floor_reason": "disk layout change"}))
    assert floor["package_id"] == mid and floor["floor_reason"] == "disk layout change"
    ok(client.post(f"{base}/{fleet.old_pkg}"))  # no body: no reason
    page = ok(client.get(base))
    assert page["total_count"] == 2 and page["current_page"] == 1 and page["last_page"] == 1
    assert [p["version"] for p in page["packages"]] == ["1.0.0", "1.5.0"]
    assert page["packages"][1]["is_floor"] is True
    assert page["packages"][1]["floor_reason"] == "disk layout change"
    # again: the reason is updated, not duplicated
    ok(client.put(f"{base}/{mid}", json={"floor_reason": "new reason"}))
    page = ok(client.get(f"/api/apps/{fleet.app}/channels/{fleet.channel}/floors"))
    assert page["total_count"] == 2 and page["packages"][1]["floor_reason"] == "new reason"
    channels = ok(client.get(f"/api/apps/{fleet.app}/packages/{mid}/floor-channels"))
    assert channels["count"] == 1 and channels["channels"][0]["channel"]["id"] == fleet.channel
    # a floor cannot be deleted or blacklisted while it is one
    error_of(client.delete(f"/api/apps/{fleet.app}/packages/{mid}"), 409)
    error_of(
        client.put(
            f"/api/apps/{fleet.app}/packages/{mid}", json={"channels_blacklist": [fleet.channel]}
        ),
        409,
    )
    assert client.delete(f"{base}/{mid}").status_code == 204
    error_of(client.delete(f"{base}/{mid}"), 404)
    assert ok(client.get(base))["total_count"] == 1
    assert client.delete(f"/api/apps/{fleet.app}/packages/{mid}").status_code == 204


def test_floor_rules(client: TestClient, fleet: Fleet) -> None:
    base = f"/api/channels/{fleet.channel}/floors"
    arm = create_package(client, fleet.app, "1.2.0", arch=2)
    assert "arch" in error_of(client.post(f"{base}/{arm}"), 400)
    blocked = create_package(client, fleet.app, "1.3.0", channels_blacklist=[fleet.channel])
    assert "blacklist" in error_of(client.post(f"{base}/{blocked}"), 400)
    other = ok(client.post("/api/apps", json={"name": "o"}))["id"]
    foreign = create_package(client, other, "1.4.0")
    error_of(client.post(f"{base}/{foreign}"), 400)
    error_of(client.post(f"{base}/nope"), 404)
    error_of(client.get("/api/channels/nope/floors"), 404)
    assert "floor_reason" in error_of(
        client.post(f"{base}/{fleet.old_pkg}", json={"floor_reason": "x" * 501}), 400
    )
