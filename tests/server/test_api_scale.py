"""The instance list and group statistics stay fast with 100k instances in one group."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from wellcar.server.db import schema as t

from .api_support import Fleet, ok
from .conftest import FakeClock

N = 100_000
BUDGET_S = 3.0  # generous: a few hundred ms each on a laptop


@pytest.mark.slow
def test_100k_instances(client: TestClient, clock: FakeClock) -> None:
    fleet = Fleet.build(client)
    now = clock.now
    rng = random.Random(7)
    with fleet.engine.begin() as c:
        c.execute(insert(t.instance), [
            {"id": f"{i:032x}", "ip": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
             "alias": f"host-{i}" if i % 10 == 0 else "", "oem": "", "oem_version": "",
             "aleph_version": "", "created_ts": now - timedelta(days=40)}
            for i in range(N)
        ])  # fmt: skip
        c.execute(insert(t.instance_application), [
            {"instance_id": f"{i:032x}", "application_id": fleet.app, "group_id": fleet.group,
             "version": ("1.0.0", "2.0.0")[i % 2], "status": (None, 2, 3, 4, 7)[i % 5],
             "last_check_for_updates": now - timedelta(minutes=i % (60 * 24 * 20)),
             "update_in_progress": False, "created_ts": now - timedelta(days=rng.randint(1, 40))}
            for i in range(N)
        ])  # fmt: skip
        c.execute(insert(t.instance_status_history), [
            {"status": 4, "version": "2.0.0", "instance_id": f"{i:032x}",
             "application_id": fleet.app, "group_id": fleet.group,
             "created_ts": now - timedelta(hours=rng.randint(1, 700))}
            for i in range(0, N, 3)
        ])  # fmt: skip
    base = f"/api/apps/{fleet.app}/groups/{fleet.group}"
    calls: list[tuple[str, dict[str, object]]] = [
        ("/instances", {}),
        ("/instances", {"page": 5000, "perpage": 20}),
        ("/instances", {"sortFilter": "2", "page": 3000}),
        ("/instances", {"search": "host-9999"}),
        ("/instances", {"status": 4, "duration": "7d"}),
        ("/instancescount", {}),
        ("/instances_stats", {"duration": "30d"}),
        ("/version_breakdown", {}),
        ("/version_timeline", {"duration": "30d"}),
        ("/status_timeline", {"duration": "30d"}),
        (f"/instances/{1:032x}/status_history", {}),
    ]
    results = {}
    for path, params in calls:
        started = time.perf_counter()
        results[(path, str(params))] = ok(client.get(base + path, params=params))
        elapsed = time.perf_counter() - started
        assert elapsed < BUDGET_S, f"{path} {params} took {elapsed:.2f}s"
    assert results[("/instances", "{}")]["total"] == N
    last = results[("/instances", str({"page": 5000, "perpage": 20}))]
    assert last["total"] == N and len(last["instances"]) == 20
    assert results[("/instancescount", "{}")]["count"] == N
    assert results[("/instances_stats", str({"duration": "30d"}))]["total"] == N
    timeline = results[("/version_timeline", str({"duration": "30d"}))]
    newest = next(iter(timeline.values()))
    assert sum(newest.values()) == N
