"""Instances of a group: paging totals, filters, search, sort, history and aliases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from wellcar.server.fleet_codes import InstanceStatus

from .api_support import Fleet, error_of, ok, seed_history, seed_instance
from .conftest import FakeClock
from .omaha_client import Node, post


@pytest.fixture
def fleet(client: TestClient, clock: FakeClock) -> Fleet:
    return build_fleet(client, clock)


def build_fleet(client: TestClient, clock: FakeClock) -> Fleet:
    """25 instances: 10 on 1.0.0 without status, 8 complete on 2.0.0, 4 errors, 3 downloading;
    plus one silent for 10 days, one in another group, and one "fake" {uuid} instance."""
    f = Fleet.build(client)
    now = clock.now
    n = 0

    def add(count: int, version: str, status: InstanceStatus | None) -> None:
        nonlocal n
        for _ in range(count):
            seed_instance(f.engine, f, f"m{n:03d}", version=version, status=status,
                          seen=now - timedelta(minutes=n), ip=f"10.0.{n // 10}.{n}")  # fmt: skip
            n += 1

    add(10, "1.0.0", None)
    add(8, "2.0.0", InstanceStatus.COMPLETE)
    add(4, "1.0.0", InstanceStatus.ERROR)
    add(3, "1.0.0", InstanceStatus.DOWNLOADING)
    seed_instance(f.engine, f, "silent", seen=now - timedelta(days=10))
    other = ok(client.post(f"/api/apps/{f.app}/groups", json={"name": "other"}))["id"]
    seed_instance(f.engine, f, "elsewhere", seen=now, group=other)
    seed_instance(f.engine, f, "{8ae1ad4e-3a5d-4b0c-9e6d-111111111111}", seen=now)
    return f


def url(fleet: Fleet, suffix: str = "instances") -> str:
    return f"/api/apps/{fleet.app}/groups/{fleet.group}/{suffix}"


def ids(page: dict[str, object]) -> list[str]:
    return [i["id"] for i in page["instances"]]  # type: ignore[attr-defined]


def test_paging_reports_the_total_and_walks_every_instance(
    client: TestClient, fleet: Fleet
) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        body = ok(client.get(url(fleet), params={"page": page, "perpage": 10}))
        assert body["total"] == 26  # 25 + the one silent for 10 days (30d window)
        seen += ids(body)
    assert len(seen) == 26 and len(set(seen)) == 26
    assert "elsewhere" not in seen and not any(s.startswith("{") for s in seen)
    assert ok(client.get(url(fleet), params={"page": 4, "perpage": 10}))["instances"] == []
    assert ok(client.get(url(fleet, "instancescount")))["count"] == 26
    assert ok(client.get(url(fleet, "instancescount"), params={"duration": "1d"}))["count"] == 25
    assert ok(client.get(url(fleet), params={"duration": "1h"}))["total"] == 25
    assert ok(client.get(url(fleet), params={"duration": "1h", "perpage": 0}))["total"] == 25


@pytest.mark.parametrize(
    ("params", "total"),
    [
        ({"status": 1}, 11),  # no status yet counts as undefined
        ({"status": 4}, 8),
        ({"status": 3}, 4),
        ({"status": 7}, 3),
        ({"status": 0}, 26),
        ({"version": "2.0.0"}, 8),
        ({"version": "1.0.0", "status": 3}, 4),
        ({"search": "m00"}, 10),
        ({"searchFilter": "All", "searchValue": "M01"}, 10),
        ({"searchFilter": "ip", "searchValue": "10.0.2."}, 5),
        ({"searchFilter": "id", "searchValue": "m02"}, 5),
        ({"search": "no-such-thing"}, 0),
        ({"search": "%"}, 0),
    ],
)
def test_filters_and_search(
    client: TestClient, fleet: Fleet, params: dict[str, object], total: int
) -> None:
    body = ok(client.get(url(fleet), params={**params, "perpage": 100}))
    assert body["total"] == total
    assert len(body["instances"]) == total


def test_sorting(client: TestClient, fleet: Fleet) -> None:
    first = ok(client.get(url(fleet), params={"duration": "1d"}))
    assert ids(first)[0] == "m024"  # default: alias (or id) descending
    asc = ok(client.get(url(fleet), params={"sortFilter": "0", "sortOrder": "0"}))
    assert ids(asc)[:2] == ["m000", "m001"]
    by_check = ok(client.get(url(fleet), params={"sortFilter": "2", "sortOrder": "1"}))
    assert ids(by_check)[0] == "m000"  # seen most recently
    by_check = ok(
        client.get(url(fleet), params={"sort": "last_check_for_updates", "sortOrder": "asc"})
    )
    assert ids(by_check)[0] == "silent"
    assert "sortFilter" in error_of(client.get(url(fleet), params={"sortFilter": "9"}), 400)


def test_alias_is_shown_and_searched(client: TestClient, fleet: Fleet) -> None:
    inst = ok(client.put("/api/instances/m005", json={"alias": "db-primary"}))
    assert inst["alias"] == "db-primary" and inst["application"] is None
    body = ok(client.get(url(fleet), params={"search": "DB-PRI"}))
    assert ids(body) == ["m005"] and body["instances"][0]["alias"] == "db-primary"
    # without an alias the list shows the machine id, as Nebraska
    m6 = ok(client.get(url(fleet), params={"search": "m006"}))["instances"][0]
    assert m6["alias"] == "m006"
    # sorted by alias: "db-primary" sorts before every "m..." id
    asc = ok(client.get(url(fleet), params={"sortOrder": "0"}))
    assert ids(asc)[0] == "m005"
    error_of(client.put("/api/instances/nope", json={"alias": "x"}), 404)
    error_of(client.put("/api/instances/m005", json={}), 400)


def test_instance_shape_and_get(client: TestClient, fleet: Fleet, clock: FakeClock) -> None:
    inst = ok(client.get(url(fleet, "instances/m012")))
    assert set(inst) == {
        "id", "ip", "created_ts", "alias", "oem", "oem_version", "aleph_version", "application",
    }  # fmt: skip
    app = inst["application"]
    assert set(app) == {
        "instance_id", "application_id", "group_id", "version", "created_ts", "status",
        "last_check_for_updates", "last_update_granted_ts", "last_update_version",
        "update_in_progress",
    }  # fmt: skip
    assert (app["instance_id"], app["group_id"], app["version"], app["status"]) == (
        "m012", fleet.group, "2.0.0", 4,
    )  # fmt: skip
    assert app["last_check_for_updates"] == "2026-11-18T09:48:00Z"
    assert (inst["oem"], inst["aleph_version"], inst["ip"]) == ("qemu", "0.9.0", "10.0.1.12")
    assert ok(client.get(f"/api/apps/{fleet.app}/instances/m012")) == inst
    error_of(client.get(url(fleet, "instances/nope")), 404)
    error_of(client.get(f"/api/apps/{fleet.app}/groups/nope/instances"), 404)
    error_of(client.get(url(fleet), params={"status": 9}), 400)
    assert "duration" in error_of(client.get(url(fleet), params={"duration": "2d"}), 400)


def test_status_history_newest_first_with_error_code(
    client: TestClient, fleet: Fleet, clock: FakeClock
) -> None:
    t0 = clock.now - timedelta(hours=3)
    steps = [InstanceStatus.UPDATE_GRANTED, InstanceStatus.DOWNLOADING, InstanceStatus.ERROR]
    for i, status in enumerate(steps):
        seed_history(fleet.engine, fleet, "m020", status, "2.0.0", t0 + timedelta(minutes=i),
                     error_code="268437459")  # fmt: skip
    history = ok(client.get(url(fleet, "instances/m020/status_history")))
    assert [h["status"] for h in history] == [3, 7, 2]
    assert history[0] == {
        "status": 3, "version": "2.0.0", "created_ts": "2026-11-18T07:02:00Z",
        "error_code": "268437459",
    }  # fmt: skip
    assert history[1]["error_code"] is None
    assert (
        len(ok(client.get(url(fleet, "instances/m020/status_history"), params={"limit": 1}))) == 1
    )
    error_of(client.get(url(fleet, "instances/nope/status_history")), 404)


def test_instances_registered_over_omaha_show_up(client: TestClient, fleet: Fleet) -> None:
    node = Node("omaha-node-1", "1.0.0", track="stable", app_id=fleet.app)
    post(client, node.check_request())
    body = ok(client.get(url(fleet), params={"search": "omaha-node"}))
    assert body["total"] == 1
    app = body["instances"][0]["application"]
    assert app["version"] == "1.0.0" and app["status"] == 2 and app["update_in_progress"] is True
    assert app["last_update_version"] == "2.0.0"
