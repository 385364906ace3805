"""Per-group statistics and the activity feed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from wellcar.server.activity_log import add_activity
from wellcar.server.fleet_codes import ActivityClass, InstanceStatus, Severity

from .api_support import Fleet, error_of, ok, seed_history, seed_instance
from .conftest import FakeClock

S = InstanceStatus


@pytest.fixture
def fleet(client: TestClient) -> Fleet:
    return Fleet.build(client)


def url(fleet: Fleet, suffix: str) -> str:
    return f"/api/apps/{fleet.app}/groups/{fleet.group}/{suffix}"


def iso(t: datetime) -> str:
    return t.isoformat() + "Z"


def test_version_breakdown_counts_instances_seen_in_24h(
    client: TestClient, fleet: Fleet, clock: FakeClock
) -> None:
    now = clock.now
    assert ok(client.get(url(fleet, "version_breakdown"))) == []
    for i in range(3):
        seed_instance(
            fleet.engine, fleet, f"old{i}", version="1.0.0", seen=now - timedelta(hours=i)
        )
    seed_instance(fleet.engine, fleet, "new", version="10.0.0", seen=now - timedelta(hours=23))
    seed_instance(fleet.engine, fleet, "gone", version="10.0.0", seen=now - timedelta(hours=25))
    seed_instance(fleet.engine, fleet, "{8ae1ad4e-3a5d-4b0c-9e6d-111111111111}", seen=now)
    assert ok(client.get(url(fleet, "version_breakdown"))) == [
        {"version": "10.0.0", "instances": 1, "percentage": 25.0},
        {"version": "1.0.0", "instances": 3, "percentage": 75.0},
    ]


def test_instances_stats(client: TestClient, fleet: Fleet, clock: FakeClock) -> None:
    now = clock.now
    plan: list[tuple[str, S | None]] = [
        ("1.0.0", None), ("1.0.0", None), ("2.0.0", None),  # on the channel's version: complete
        ("1.0.0", S.UNDEFINED), ("1.0.0", S.UPDATE_GRANTED), ("1.0.0", S.ERROR),
        ("2.0.0", S.COMPLETE), ("1.0.0", S.INSTALLED), ("1.0.0", S.DOWNLOADED),
        ("1.0.0", S.DOWNLOADING), ("1.0.0", S.DOWNLOADING), ("1.0.0", S.ON_HOLD),
    ]  # fmt: skip
    for i, (version, status) in enumerate(plan):
        seed_instance(fleet.engine, fleet, f"m{i}", version=version, status=status, seen=now)
    seed_instance(fleet.engine, fleet, "week-old", status=S.ERROR, seen=now - timedelta(days=3))
    stats = ok(client.get(url(fleet, "instances_stats"), params={"duration": "1d"}))
    assert stats == {
        "total": 12, "undefined": 3, "update_granted": 1, "error": 1, "complete": 2,
        "installed": 1, "downloaded": 1, "downloading": 2, "onhold": 1,
    }  # fmt: skip
    stats = ok(client.get(url(fleet, "instances_stats"), params={"duration": "7d"}))
    assert stats["total"] == 13 and stats["error"] == 2
    assert "duration" in error_of(client.get(url(fleet, "instances_stats?duration=1y")), 400)


def test_version_timeline(client: TestClient, fleet: Fleet, clock: FakeClock) -> None:
    now = clock.now
    h = timedelta(hours=1)
    e = fleet.engine
    # A: on 1.0.0, updated to 2.0.0 five hours ago
    seed_instance(e, fleet, "A", version="2.0.0", seen=now, created=now - 48 * h)
    seed_history(e, fleet, "A", S.COMPLETE, "2.0.0", now - 5 * h, previous_version="1.0.0")
    # B: registered ten hours ago on 1.0.0
    seed_instance(e, fleet, "B", version="1.0.0", seen=now, created=now - 10 * h)
    # C: 1.0.0 -> 1.5.0 twenty hours ago, -> 2.0.0 two hours ago
    seed_instance(e, fleet, "C", version="2.0.0", seen=now, created=now - 72 * h)
    seed_history(e, fleet, "C", S.COMPLETE, "1.5.0", now - 20 * h, previous_version="1.0.0")
    seed_history(e, fleet, "C", S.COMPLETE, "2.0.0", now - 2 * h, previous_version="1.5.0")
    # nightlies and instances not seen in the window do not count
    seed_instance(e, fleet, "N", version="2.1.0-nightly", seen=now, created=now - 48 * h)
    seed_instance(e, fleet, "Z", version="1.0.0", seen=now - 30 * h, created=now - 48 * h)

    timeline = ok(client.get(url(fleet, "version_timeline"), params={"duration": "1d"}))
    assert len(timeline) == 25
    assert next(iter(timeline)) == iso(now) and list(timeline)[-1] == iso(now - 24 * h)
    assert timeline[iso(now - 24 * h)] == {"1.0.0": 2, "1.5.0": 0, "2.0.0": 0}
    assert timeline[iso(now - 12 * h)] == {"1.0.0": 1, "1.5.0": 1, "2.0.0": 0}
    assert timeline[iso(now - 5 * h)] == {"1.0.0": 1, "1.5.0": 1, "2.0.0": 1}
    assert timeline[iso(now)] == {"1.0.0": 1, "1.5.0": 0, "2.0.0": 2}
    assert len(ok(client.get(url(fleet, "version_timeline"), params={"duration": "7d"}))) == 8
    assert len(ok(client.get(url(fleet, "version_timeline"), params={"duration": "30d"}))) == 11


def test_status_timeline(client: TestClient, fleet: Fleet, clock: FakeClock) -> None:
    now = clock.now
    m = timedelta(minutes=1)
    e = fleet.engine
    for machine in ("A", "B"):
        seed_instance(e, fleet, machine, seen=now)
    seed_history(e, fleet, "A", S.UPDATE_GRANTED, "2.0.0", now - 50 * m)
    seed_history(e, fleet, "A", S.DOWNLOADING, "2.0.0", now - 40 * m)
    seed_history(e, fleet, "B", S.DOWNLOADING, "2.0.0", now - 31 * m)
    seed_history(e, fleet, "A", S.COMPLETE, "2.0.0", now - 10 * m)
    seed_history(e, fleet, "B", S.ERROR, "2.0.0", now)  # at "now": in no finished step
    seed_history(e, fleet, "B", S.UPDATE_GRANTED, "2.0.0", now - 70 * m)
    seed_history(e, fleet, "B", S.UPDATE_GRANTED, "1.9.0", now - 80 * m)  # before the window
    timeline = ok(client.get(url(fleet, "status_timeline"), params={"duration": "1h"}))
    assert list(timeline) == [iso(now - i * 15 * m) for i in range(5)]
    assert timeline[iso(now - 60 * m)] == {"2": {"2.0.0": 1}, "7": {}, "4": {}}
    assert timeline[iso(now - 45 * m)] == {"2": {"2.0.0": 1}, "7": {}, "4": {}}
    assert timeline[iso(now - 30 * m)] == {"2": {}, "7": {"2.0.0": 2}, "4": {}}
    assert timeline[iso(now - 15 * m)] == {"2": {}, "7": {}, "4": {}}
    assert timeline[iso(now)] == {"2": {}, "7": {}, "4": {"2.0.0": 1}}


def test_stats_of_unknown_group_are_404(client: TestClient, fleet: Fleet) -> None:
    for suffix in ("version_breakdown", "version_timeline", "status_timeline", "instances_stats"):
        error_of(client.get(f"/api/apps/{fleet.app}/groups/nope/{suffix}"), 404)


def test_activity_feed_filters_and_names(
    client: TestClient, fleet: Fleet, clock: FakeClock
) -> None:
    now = clock.now
    e = fleet.engine
    other = ok(client.post("/api/apps", json={"name": "Other", "product_id": "io.other"}))["id"]
    with e.begin() as c:
        for i in range(12):
            add_activity(
                c,
                ActivityClass.ROLLOUT_STARTED,
                Severity.INFO,
                "2.0.0",
                fleet.app,
                now - timedelta(hours=i),
                group_id=fleet.group,
            )
        add_activity(
            c,
            ActivityClass.INSTANCE_UPDATE_FAILED,
            Severity.ERROR,
            "2.0.0",
            fleet.app,
            now - timedelta(minutes=30),
            group_id=fleet.group,
            instance_id="m1",
        )
        add_activity(
            c,
            ActivityClass.ROLLOUT_FINISHED,
            Severity.SUCCESS,
            "9.0.0",
            other,
            now - timedelta(days=2),
        )
        add_activity(
            c,
            ActivityClass.ROLLOUT_FINISHED,
            Severity.SUCCESS,
            "9.0.0",
            other,
            now - timedelta(days=5),
        )
    page = ok(client.get("/api/activity"))
    assert page["totalCount"] == 14 and page["count"] == 10  # default window: 3 days
    times = [a["created_ts"] for a in page["activities"]]
    assert times == sorted(times, reverse=True)
    first = page["activities"][0]
    assert first["class"] == 2 and first["application_name"] == "Flatcar"
    assert first["group_name"] == "Stable" and first["group_id"] == fleet.group
    failed = ok(client.get("/api/activity", params={"severity": 4}))["activities"]
    assert [(a["class"], a["instance_id"]) for a in failed] == [(5, "m1")]
    assert ok(client.get("/api/activity", params={"instanceID": "m1"}))["totalCount"] == 1
    assert ok(client.get("/api/activity", params={"app": "io.other"}))["totalCount"] == 1
    assert (
        ok(client.get("/api/activity", params={"appIDorProductID": fleet.app}))["totalCount"] == 13
    )
    assert ok(client.get("/api/activity", params={"groupID": fleet.group}))["totalCount"] == 13
    assert ok(client.get("/api/activity", params={"version": "9.0.0"}))["totalCount"] == 1
    week = {"start": iso(now - timedelta(days=7)), "end": iso(now)}
    assert ok(client.get("/api/activity", params=week))["totalCount"] == 15
    window = {"start": "2026-11-18T07:30:00+00:00", "end": "2026-11-18T09:30:00Z"}
    assert ok(client.get("/api/activity", params=window))["totalCount"] == 3  # 8:00, 9:00, 9:30
    assert ok(client.get("/api/activity", params={"page": 2}))["count"] == 4
    assert "start" in error_of(client.get("/api/activity", params={"start": "yesterday"}), 400)
    error_of(client.get("/api/activity", params={"app": "io.nothing"}), 404)
    error_of(client.get("/api/activity", params={"severity": 9}), 400)
