"""Omaha behaviour at /v1/update/: Nebraska's answers for the same state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import ActivityClass, Arch, InstanceStatus, PackageType

from .conftest import FakeClock
from .fleet_seed import Seed
from .omaha_client import Node, post

FLATCAR = canonical_uuid(FLATCAR_APP_ID)
assert FLATCAR is not None


@pytest.fixture
def engine(client: TestClient) -> Engine:
    e: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return e


@pytest.fixture
def seed(engine: Engine) -> Seed:
    return Seed(engine)


@pytest.fixture
def stable(seed: Seed) -> Iterator[dict[str, str]]:
    """The Flatcar app with a stable channel at 4459.2.2 and a group tracking it."""
    app = seed.app(FLATCAR, "Flatcar")
    old = seed.package(app, "4459.2.1")
    new = seed.package(app, "4459.2.2")
    ch = seed.channel(app, "stable", new)
    grp = seed.group(app, ch, "stable")
    yield {"app": app, "old": old, "new": new, "channel": ch, "group": grp}


def status_of(engine: Engine, machine_id: str) -> tuple[int | None, str, bool]:
    ia = t.instance_application
    with engine.connect() as c:
        row = c.execute(
            select(ia.c.status, ia.c.version, ia.c.update_in_progress).where(
                ia.c.instance_id == machine_id
            )
        ).one()
    return row[0], row[1], bool(row[2])


def activity_classes(engine: Engine) -> list[int]:
    with engine.connect() as c:
        return [r[0] for r in c.execute(select(t.activity.c["class"]).order_by(t.activity.c.id))]


def test_full_flatcar_update_flow(
    client: TestClient, engine: Engine, stable: dict[str, str]
) -> None:
    node = Node("m-1", "4459.2.1")
    answer = post(client, node.check_request())
    assert answer.status == "ok"
    assert answer.ping_status == "ok"
    assert answer.event_statuses == ["ok"]
    uc = answer.updatecheck
    assert uc is not None and uc.status == "ok"
    assert uc.urls == ["http://127.0.0.1:9/4459.2.2/"]
    (manifest,) = uc.manifests
    assert manifest.version == "4459.2.2"
    assert manifest.packages[0].name == "wellcar_update.gz"
    assert manifest.packages[0].size == 1008
    assert manifest.packages[0].required is True
    action = manifest.actions[0]
    assert action.event == "postinstall"
    assert action.sha256 == "sha256-of-4459.2.2"
    assert action.disable_payload_backoff is True
    assert action.is_delta_payload is None  # false is omitted, as Nebraska does
    assert status_of(engine, "m-1") == (InstanceStatus.UPDATE_GRANTED, "4459.2.1", True)

    post(client, node.event_request(13, 1))
    assert status_of(engine, "m-1")[0] == InstanceStatus.DOWNLOADING
    post(client, node.event_request(14, 1))
    assert status_of(engine, "m-1")[0] == InstanceStatus.DOWNLOADED
    post(client, node.event_request(3, 1))
    # For the Flatcar app 3/1 is not completion.
    assert status_of(engine, "m-1")[0] == InstanceStatus.DOWNLOADED

    node.version = "4459.2.2"
    answer = post(client, node.check_request(previous_version="4459.2.1"))
    assert answer.updatecheck is not None and answer.updatecheck.status == "noupdate"
    assert status_of(engine, "m-1") == (InstanceStatus.COMPLETE, "4459.2.2", False)
    assert activity_classes(engine) == [
        ActivityClass.ROLLOUT_STARTED,
        ActivityClass.ROLLOUT_FINISHED,
    ]
    with engine.connect() as c:
        history = [
            r[0]
            for r in c.execute(
                select(t.instance_status_history.c.status).order_by(t.instance_status_history.c.id)
            )
        ]
        events = c.execute(select(t.event.c.type, t.event.c.result)).all()
        rollout = c.execute(select(t.groups.c.rollout_in_progress)).scalar_one()
    assert history == [2, 7, 6, 4]
    assert sorted(events) == [(3, 1), (3, 2), (13, 1), (14, 1)]
    assert rollout is False


def test_check_while_downloading_is_refused(client: TestClient, stable: dict[str, str]) -> None:
    node = Node("m-2", "4459.2.1")
    post(client, node.check_request())
    post(client, node.event_request(13, 1))
    # An update check without the 3/2 event (not update_engine, but another Omaha client).
    req = node.check_request()
    req.apps[0].events = []
    answer = post(client, req)
    assert answer.status == "error-updateInProgressOnInstance"
    assert answer.updatecheck is not None and answer.updatecheck.status == "error-internal"


def test_flatcar_checkin_without_previous_version_resets(
    client: TestClient, engine: Engine, stable: dict[str, str]
) -> None:
    node = Node("m-3", "4459.2.1")
    post(client, node.check_request())
    post(client, node.event_request(13, 1))
    # update_engine restarted mid-download: its next check carries 3/2 with no previous
    # version, so Nebraska resets the instance and may grant again.
    answer = post(client, node.check_request())
    assert answer.updatecheck is not None and answer.updatecheck.status == "ok"
    with engine.connect() as c:
        history = [
            r[0]
            for r in c.execute(
                select(t.instance_status_history.c.status).order_by(t.instance_status_history.c.id)
            )
        ]
    assert history == [2, 7, 1, 2]


def test_rollback_reports_error(client: TestClient, engine: Engine, stable: dict[str, str]) -> None:
    node = Node("m-4", "4459.2.1")
    post(client, node.check_request())
    for et in ((13, 1), (14, 1), (3, 1)):
        post(client, node.event_request(*et))
    # The new version did not come up: the node is back on the old one and says so.
    post(client, node.event_request(3, 0, errorcode=44))
    assert status_of(engine, "m-4") == (InstanceStatus.ERROR, "4459.2.1", False)
    assert activity_classes(engine)[-1] == ActivityClass.INSTANCE_UPDATE_FAILED
    with engine.connect() as c:
        code = c.execute(select(t.event.c.error_code).where(t.event.c.result == 0)).scalar_one()
    assert code == "44"


def test_events_ignored_without_update_in_progress(
    client: TestClient, engine: Engine, stable: dict[str, str]
) -> None:
    node = Node("m-5", "4459.2.2")  # already current
    assert post(client, node.check_request()).updatecheck.status == "noupdate"  # type: ignore[union-attr]
    answer = post(client, node.event_request(13, 1))
    assert answer.event_statuses == ["ok"]  # acknowledged, as Nebraska does
    with engine.connect() as c:
        assert c.execute(select(t.event)).first() is None


def test_non_flatcar_app_completes_on_3_1(client: TestClient, engine: Engine, seed: Seed) -> None:
    app = seed.app()
    seed.package(app, "1.0.0")
    ch = seed.channel(app, "stable", seed.package(app, "1.1.0"))
    seed.group(app, ch, "stable")
    node = Node("m-6", "1.0.0", app_id=app)
    assert post(client, node.check_request()).updatecheck.status == "ok"  # type: ignore[union-attr]
    post(client, node.event_request(3, 1))
    assert status_of(engine, "m-6") == (InstanceStatus.COMPLETE, "1.1.0", False)


def test_unknown_app_and_track(client: TestClient, stable: dict[str, str]) -> None:
    answer = post(
        client,
        Node("m-7", "1.0.0", app_id="{00000000-1111-2222-3333-444444444444}").check_request(),
    )
    assert answer.status == "error-unknownApplication"
    assert answer.updatecheck is not None and answer.updatecheck.status == "error-internal"
    answer = post(client, Node("m-7", "1.0.0", track="nightly").check_request())
    assert answer.status == "error-unknownApplicationOrGroup"


def test_legacy_group_uuid_track(client: TestClient, stable: dict[str, str]) -> None:
    node = Node("m-8", "4459.2.1", track="{9a2deb70-37be-4026-853f-bfdd6b347bbe}")
    answer = post(client, node.check_request())
    assert answer.status == "ok"
    assert answer.updatecheck is not None and answer.updatecheck.manifests[0].version == "4459.2.2"


def test_arch_selects_group(client: TestClient, seed: Seed, stable: dict[str, str]) -> None:
    app = stable["app"]
    arm_pkg = seed.package(app, "4459.2.5", arch=Arch.AARCH64)
    arm_ch = seed.channel(app, "stable", arm_pkg, arch=Arch.AARCH64)
    seed.group(app, arm_ch, "stable")
    arm = post(client, Node("m-arm", "4459.2.1", board="arm64-usr").check_request())
    amd = post(client, Node("m-amd", "4459.2.1", board="amd64-usr").check_request())
    assert arm.updatecheck is not None and arm.updatecheck.manifests[0].version == "4459.2.5"
    assert amd.updatecheck is not None and amd.updatecheck.manifests[0].version == "4459.2.2"


def test_floors_step_by_step(client: TestClient, engine: Engine, seed: Seed) -> None:
    app = seed.app()
    ch = seed.channel(app, "stable", None)
    f1 = seed.package(app, "2.0.0")
    target = seed.package(app, "3.0.0")
    seed.set_channel_package(ch, target)
    seed.floor(ch, f1, "needs the new partition layout")
    seed.group(app, ch, "stable")
    node = Node("m-9", "1.0.0", app_id=app)
    answer = post(client, node.check_request())
    assert answer.updatecheck is not None
    assert [m.version for m in answer.updatecheck.manifests] == ["2.0.0"]
    post(client, node.event_request(3, 2, previous_version="1.0.0"))
    node.version = "2.0.0"
    answer = post(client, node.check_request(previous_version="1.0.0"))
    assert answer.updatecheck is not None
    assert [m.version for m in answer.updatecheck.manifests] == ["3.0.0"]


def test_multi_manifest_syncer_gets_all_floors(client: TestClient, seed: Seed) -> None:
    app = seed.app()
    ch = seed.channel(app, "stable", None)
    f1, f2, target = (seed.package(app, v) for v in ("2.0.0", "2.5.0", "3.0.0"))
    seed.set_channel_package(ch, target)
    seed.floor(ch, f1, "first")
    seed.floor(ch, f2, "second")
    seed.group(app, ch, "stable")
    req = Node("syncer", "1.0.0", app_id=app).check_request()
    req.apps[0].multi_manifest_ok = True
    answer = post(client, req)
    assert answer.updatecheck is not None
    ms = answer.updatecheck.manifests
    assert [(m.version, m.is_floor, m.floor_reason, m.is_target) for m in ms] == [
        ("2.0.0", True, "first", None),
        ("2.5.0", True, "second", None),
        ("3.0.0", None, None, True),
    ]


def test_blacklisted_package_is_not_offered(
    client: TestClient, seed: Seed, stable: dict[str, str]
) -> None:
    seed.blacklist(stable["new"], stable["channel"])
    answer = post(client, Node("m-10", "4459.2.1").check_request())
    assert answer.updatecheck is not None and answer.updatecheck.status == "noupdate"


def test_no_package_on_channel(client: TestClient, engine: Engine, seed: Seed) -> None:
    app = seed.app()
    seed.group(app, seed.channel(app, "stable", None), "stable")
    node = Node("m-11", "1.0.0", app_id=app)
    for _ in range(3):
        assert post(client, node.check_request()).status == "error-noPackageFound"
    # Reported once, not on every check-in.
    assert activity_classes(engine) == [ActivityClass.PACKAGE_NOT_FOUND]


def test_invalid_version_and_missing_machine_id(client: TestClient, stable: dict[str, str]) -> None:
    assert post(client, Node("m-12", "4459.2").check_request()).status == (
        "error-instanceRegistrationFailed"
    )
    assert post(client, Node("", "4459.2.1").check_request()).status == "error-missingMachineId"


def test_period_limit_and_hold(
    client: TestClient, engine: Engine, clock: FakeClock, seed: Seed
) -> None:
    app = seed.app(FLATCAR)
    ch = seed.channel(app, "stable", seed.package(app, "2.0.0"))
    seed.group(
        app, ch, "stable", max_updates_per_period=2, period_interval="15 minutes", safe_mode=False
    )
    nodes = [Node(f"n{i}", "1.0.0") for i in range(3)]
    answers = [post(client, n.check_request()) for n in nodes]
    assert [a.status for a in answers] == ["ok", "ok", "error-maxUpdatesPerPeriodLimitReached"]
    assert status_of(engine, "n2")[0] == InstanceStatus.ON_HOLD
    # A new period: but two updates are still in progress (not timed out): concurrency limit.
    clock.advance(minutes=16)
    assert post(client, nodes[2].check_request()).status == "error-maxConcurrentUpdatesLimitReached"
    # One finishes: room for one more.
    post(client, nodes[0].event_request(3, 2, previous_version="1.0.0"))
    assert post(client, nodes[2].check_request()).status == "ok"


def test_safe_mode_one_first_then_disables_on_timeouts(
    client: TestClient, engine: Engine, clock: FakeClock, seed: Seed
) -> None:
    app = seed.app(FLATCAR)
    ch = seed.channel(app, "stable", seed.package(app, "2.0.0"))
    grp = seed.group(
        app,
        ch,
        "stable",
        max_updates_per_period=5,
        period_interval="1 minutes",
        update_timeout="30 minutes",
        safe_mode=True,
    )
    first, second = Node("s1", "1.0.0"), Node("s2", "1.0.0")
    assert post(client, first.check_request()).status == "ok"
    clock.advance(minutes=2)
    # Safe mode: nobody else until the first attempt ends.
    assert post(client, second.check_request()).status == "error-maxConcurrentUpdatesLimitReached"
    # The first update never finishes; once it times out safe mode stops the group.
    clock.advance(minutes=31)
    post(client, first.event_request(13, 1))  # keeps the instance seen, still in progress
    assert post(client, second.check_request()).status == "error-maxTimedOutUpdatesLimitReached"
    with engine.connect() as c:
        enabled = c.execute(
            select(t.groups.c.policy_updates_enabled).where(t.groups.c.id == grp)
        ).scalar_one()
    assert enabled is False
    assert post(client, second.check_request()).status == "error-updatesDisabled"


def test_office_hours_closed(client: TestClient, clock: FakeClock, seed: Seed) -> None:
    app = seed.app(FLATCAR)
    ch = seed.channel(app, "stable", seed.package(app, "2.0.0"))
    seed.group(
        app,
        ch,
        "stable",
        office_hours=True,
        timezone="Europe/Berlin",
        office_hours_spec="sat-sun 00:00-24:00",
    )
    # The fake clock says Wednesday.
    assert post(client, Node("o1", "1.0.0").check_request()).status == "error-updatesDisabled"
    clock.advance(days=3)
    assert post(client, Node("o1", "1.0.0").check_request()).status == "ok"


def test_instance_details_recorded(
    client: TestClient, engine: Engine, stable: dict[str, str]
) -> None:
    node = Node("m-13", "4459.2.1", alias="web-1")
    post(client, node.check_request())
    node.alias = None  # an omitted alias keeps the stored one
    post(client, node.event_request(13, 1))
    with engine.connect() as c:
        row = c.execute(select(t.instance).where(t.instance.c.id == "m-13")).one()._mapping
    assert (row["alias"], row["oem"], row["aleph_version"], row["ip"]) == (
        "web-1",
        "qemu",
        "4000.0.0",
        "testclient",
    )


def test_a_flatcar_package_without_an_action_is_an_internal_error(
    client: TestClient, seed: Seed
) -> None:
    """As Nebraska (its manifest needs the action's sha256): `error-internal`; another
    package type needs no action."""
    app = seed.app(FLATCAR, "Flatcar")
    bare = seed.package(app, "4459.2.2", action=False)
    seed.group(app, seed.channel(app, "stable", bare), "stable")
    answer = post(client, Node("m-bare", "4459.2.1").check_request())
    assert answer.updatecheck is not None and answer.updatecheck.status == "error-internal"
    other = seed.app(None, "Other")
    pkg = seed.package(other, "2.0.0", type_=PackageType.OTHER, action=False)
    seed.group(other, seed.channel(other, "stable", pkg), "stable")
    answer = post(client, Node("m-other", "1.0.0", app_id=other).check_request())
    assert answer.updatecheck is not None and answer.updatecheck.status == "ok"
    assert answer.updatecheck.manifests[0].actions == []
