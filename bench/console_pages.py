"""Server time of the console's pages at a seeded fleet (SQLite, in process).

Seeds one application with a group of N instances (two versions, mixed statuses, a third
with a completed update in their history), signs in as admin and times each console page
(median of --repeat runs), next to the REST calls that read the same data, so the cost
of rendering shows as a ratio to the API measured in the same run. The goal (issue 17):
every page under 300 ms server time at 100k instances.

    .venv/bin/python bench/console_pages.py --instances 100000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from wellcar.server.api.app import create_app
from wellcar.server.db import schema as t
from wellcar.server.settings import ServerSettings

ADMIN = "bench-admin-token"
NOW = datetime(2026, 11, 18, 10, 0, 0)


def _ok(resp: object) -> dict[str, object]:
    assert resp.status_code < 400, resp.text  # type: ignore[attr-defined]
    return resp.json()  # type: ignore[attr-defined, no-any-return]


def seed(client: TestClient, n: int) -> tuple[str, str]:
    app = str(_ok(client.post("/api/apps", json={"name": "Flatcar"}))["id"])
    pkgs = []
    for version in ("1.0.0", "2.0.0"):
        digest = base64.b64encode(hashlib.sha256(version.encode()).digest()).decode()
        body = {"version": version, "url": f"https://example.test/{version}/",
                "filename": "u.gz", "size": "1", "hash": "c2hhMQ==",
                "flatcar_action": {"sha256": digest}}  # fmt: skip
        pkgs.append(_ok(client.post(f"/api/apps/{app}/packages", json=body))["id"])
    body = {"name": "stable", "package_id": pkgs[1]}
    channel = _ok(client.post(f"/api/apps/{app}/channels", json=body))["id"]
    group = str(_ok(client.post(f"/api/apps/{app}/groups",
                                json={"name": "Stable", "channel_id": channel}))["id"])  # fmt: skip
    rng = random.Random(7)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as c:
        c.execute(insert(t.instance), [
            {"id": f"{i:032x}", "ip": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
             "alias": f"host-{i}" if i % 10 == 0 else "", "oem": "", "oem_version": "",
             "aleph_version": "", "created_ts": NOW - timedelta(days=40)}
            for i in range(n)
        ])  # fmt: skip
        c.execute(insert(t.instance_application), [
            {"instance_id": f"{i:032x}", "application_id": app, "group_id": group,
             "version": ("1.0.0", "2.0.0")[i % 2], "status": (None, 2, 3, 4, 7)[i % 5],
             "last_check_for_updates": NOW - timedelta(minutes=i % (60 * 24 * 20)),
             "update_in_progress": False,
             "created_ts": NOW - timedelta(days=rng.randint(1, 40))}
            for i in range(n)
        ])  # fmt: skip
        c.execute(insert(t.instance_status_history), [
            {"status": 4, "version": "2.0.0", "instance_id": f"{i:032x}",
             "application_id": app, "group_id": group,
             "created_ts": NOW - timedelta(hours=rng.randint(1, 700))}
            for i in range(0, n, 3)
        ])  # fmt: skip
    return app, group


def timed(client: TestClient, path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        resp = client.get(path)
        times.append(time.perf_counter() - started)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["WELLCAR_ADMIN_TOKEN"] = ADMIN
    os.environ["WELLCAR_READ_TOKEN"] = "bench-read-token"
    with tempfile.TemporaryDirectory() as tmp:
        app_ = create_app(ServerSettings(data_dir=Path(tmp)), clock=lambda: NOW)
        with TestClient(app_) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN}"
            started = time.perf_counter()
            app, group = seed(client, args.instances)
            print(f"seeded {args.instances} instances in {time.perf_counter() - started:.1f} s")
            assert client.post("/sign-in", data={"token": ADMIN}).status_code in (200, 303)
            g = f"/apps/{app}/groups/{group}"
            api = f"/api{g}"
            rows = [
                ("applications", "/", "/api/apps"),
                ("application", f"/apps/{app}", f"/api/apps/{app}"),
                ("group 7d", f"{g}?period=7d",
                 f"{api}/version_timeline?duration=7d"),
                ("group 30d", f"{g}?period=30d",
                 f"{api}/version_timeline?duration=30d"),
                ("instances", f"{g}/instances", f"{api}/instances?duration=7d"),
                ("instances p500", f"{g}/instances?page=500",
                 f"{api}/instances?duration=7d&page=500&perpage=20"),
                ("instances search", f"{g}/instances?q=host-999",
                 f"{api}/instances?duration=7d&search=host-999"),
                ("instance", f"{g}/instances/{1:032x}",
                 f"{api}/instances/{1:032x}/status_history"),
            ]  # fmt: skip
            print(f"{'page':<18}{'console ms':>12}{'REST ms':>10}{'ratio':>8}  (REST: the call")
            print(f"{'':<18}{'':>12}{'':>10}{'':>8}   reading the page's main data)")
            for name, page, rest in rows:
                page_ms = timed(client, page, args.repeat)
                rest_ms = timed(client, rest, args.repeat)
                print(f"{name:<18}{page_ms:>12.1f}{rest_ms:>10.1f}{page_ms / rest_ms:>8.2f}")


if __name__ == "__main__":
    main()
