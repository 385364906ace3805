"""Instance retention: instances that stopped checking in are forgotten, with their history;
everything still checking in stays."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.api.app import create_app
from wellcar.server.api.asgi import app_from_env, settings_to_env
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.instance_pruning import prune_instances
from wellcar.server.settings import ServerSettings

from .conftest import FakeClock
from .fleet_seed import Seed
from .omaha_client import Node, post

FLATCAR = canonical_uuid(FLATCAR_APP_ID)
OTHER_APP = "5b810680-e36a-4879-b98a-4f989e80b899"
assert FLATCAR is not None


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def seed_fleet(engine: Engine) -> None:
    seed = Seed(engine)
    for app_id, name in ((FLATCAR, "Flatcar"), (OTHER_APP, "Other")):
        app = seed.app(app_id, name)
        package = seed.package(app, "4459.2.2")
        seed.group(app, seed.channel(app, "stable", package), "stable")


def rows(engine: Engine, machine_id: str) -> dict[str, int]:
    counts = {}
    with engine.connect() as conn:
        for table in (t.instance, t.instance_application, t.instance_status_history, t.event):
            column = table.c.id if table is t.instance else table.c.instance_id
            counts[table.name] = conn.execute(
                select(func.count()).where(column == machine_id)
            ).scalar_one()
    return counts


def check_in(client: TestClient, machine_id: str, app_id: str = FLATCAR_APP_ID) -> None:
    node = Node(machine_id, "4459.2.1", app_id=app_id)
    post(client, node.check_request())
    post(client, node.event_request(13, 1))  # a status and an event to be forgotten


def test_stale_instances_go_with_their_history_and_live_ones_stay(
    client: TestClient, clock: FakeClock
) -> None:
    engine = engine_of(client)
    seed_fleet(engine)
    check_in(client, "gone")
    check_in(client, "both-apps")
    check_in(client, "both-apps", OTHER_APP)
    clock.advance(days=20)
    check_in(client, "alive")
    check_in(client, "both-apps", OTHER_APP)  # still checks in for the other app only
    before = rows(engine, "gone")
    assert before["instance_status_history"] > 0 and before["event"] > 0

    result = prune_instances(engine, clock(), timedelta(days=14), batch=1)  # batches of one

    assert result.registrations == 2 and result.instances == 1
    assert set(rows(engine, "gone").values()) == {0}
    alive = rows(engine, "alive")
    assert alive["instance"] == 1 and alive["instance_application"] == 1
    both = rows(engine, "both-apps")
    assert both["instance"] == 1 and both["instance_application"] == 1
    with engine.connect() as conn:
        kept = conn.execute(
            select(t.instance_application.c.application_id).where(
                t.instance_application.c.instance_id == "both-apps"
            )
        ).scalar_one()
        history_apps = set(
            conn.execute(
                select(t.instance_status_history.c.application_id).where(
                    t.instance_status_history.c.instance_id == "both-apps"
                )
            ).scalars()
        )
    assert str(kept) == OTHER_APP and {str(a) for a in history_apps} == {OTHER_APP}
    # Nothing left to do: a second run removes nothing.
    assert not prune_instances(engine, clock(), timedelta(days=14))


def test_a_pruned_instance_that_comes_back_is_a_new_instance(
    client: TestClient, clock: FakeClock
) -> None:
    engine = engine_of(client)
    seed_fleet(engine)
    check_in(client, "returning")
    clock.advance(days=40)
    assert prune_instances(engine, clock(), timedelta(days=30)).instances == 1
    check_in(client, "returning")
    assert rows(engine, "returning")["instance_application"] == 1
    assert client.get(f"/api/apps/{FLATCAR}/groups").status_code == 200


def test_the_retention_period_must_be_positive(client: TestClient, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="positive"):
        prune_instances(engine_of(client), clock(), timedelta(0))


@pytest.mark.postgres
def test_pruning_on_postgres(pg_client: TestClient, clock: FakeClock) -> None:
    test_stale_instances_go_with_their_history_and_live_ones_stay(pg_client, clock)


def test_serve_prunes_when_told_to(data_dir: Path, clock: FakeClock) -> None:
    """With the retention setting, the server prunes at start (then hourly)."""
    settings = ServerSettings(data_dir=data_dir)
    with TestClient(create_app(settings, clock=clock)) as c:
        seed_fleet(engine_of(c))
        check_in(c, "old-node")
    clock.advance(days=8)
    settings = ServerSettings(data_dir=data_dir, prune_instances_after_days=7)
    with TestClient(create_app(settings, clock=clock)) as c:
        deadline = time.monotonic() + 10
        while rows(engine_of(c), "old-node")["instance"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows(engine_of(c), "old-node")["instance"] == 0
    # Without it nothing is ever removed (Nebraska's behaviour).
    with TestClient(create_app(ServerSettings(data_dir=data_dir), clock=clock)) as c:
        check_in(c, "kept-node")
        clock.advance(days=400)
        assert rows(engine_of(c), "kept-node")["instance"] == 1


def test_worker_processes_get_the_retention_setting(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(data_dir, prune_instances_after_days=9)
    for name, value in settings_to_env(settings).items():
        monkeypatch.setenv(name, value)
    worker_app = app_from_env()
    assert worker_app.state.settings.prune_instances_after_days == 9
    worker_app.state.engine.dispose()
