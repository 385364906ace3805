"""Concurrent check-ins through several server processes never exceed the rollout limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from wellcar.omaha import FLATCAR_APP_ID, parse_response, render_request
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.db.engine import create_db_engine, migrate, sqlite_url
from wellcar.server.fleet_codes import InstanceStatus

from .fleet_seed import Seed
from .omaha_client import Node
from .server_processes import serve_processes

LIMIT = 5
NODES = 60
SERVERS = 3


def _run_race(tmp_path: Path, database: str | None) -> None:
    data_dir = tmp_path / "data"
    url = database or sqlite_url(data_dir)
    engine = create_db_engine(url)
    migrate(engine)
    seed = Seed(engine)
    app = seed.app(canonical_uuid(FLATCAR_APP_ID))
    seed.package(app, "1.0.0")
    ch = seed.channel(app, "stable", seed.package(app, "2.0.0"))
    seed.group(
        app, ch, "stable", max_updates_per_period=LIMIT, period_interval="1 hours", safe_mode=False
    )
    env = {"WELLCAR_ADMIN_TOKEN": "a", "WELLCAR_READ_TOKEN": "r"}
    with serve_processes(data_dir, SERVERS, database, env) as urls:
        bodies = [render_request(Node(f"race-{i}", "1.0.0").check_request()) for i in range(NODES)]

        def check_in(i: int) -> str:
            r = httpx.post(
                f"{urls[i % SERVERS]}/v1/update/",
                content=bodies[i],
                headers={"Content-Type": "text/xml"},
                timeout=60,
            )
            r.raise_for_status()
            return parse_response(r.content).apps[0].status

        with ThreadPoolExecutor(max_workers=30) as pool:
            statuses = list(pool.map(check_in, range(NODES)))
    assert statuses.count("ok") == LIMIT
    assert statuses.count("error-maxUpdatesPerPeriodLimitReached") == NODES - LIMIT
    with engine.connect() as c:
        granted = c.execute(
            select(func.count()).where(
                t.instance_application.c.status == int(InstanceStatus.UPDATE_GRANTED)
            )
        ).scalar_one()
        held = c.execute(
            select(func.count()).where(
                t.instance_application.c.status == int(InstanceStatus.ON_HOLD)
            )
        ).scalar_one()
    assert (granted, held) == (LIMIT, NODES - LIMIT)
    engine.dispose()


@pytest.mark.slow
def test_limit_holds_under_concurrency_sqlite(tmp_path: Path) -> None:
    _run_race(tmp_path, None)


@pytest.mark.slow
@pytest.mark.postgres
def test_limit_holds_under_concurrency_postgres(tmp_path: Path, postgres_url: str) -> None:
    _run_race(tmp_path, postgres_url)
