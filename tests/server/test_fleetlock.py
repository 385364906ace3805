"""FleetLock: the protocol as Zincati speaks it, the admin API, and slots under concurrency."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text
from typer.testing import CliRunner

from wellcar.cli.main import app as wellcar_cli
from wellcar.logline import LogfmtFormatter
from wellcar.server.api.app import create_app
from wellcar.server.api.asgi import app_from_env, settings_to_env
from wellcar.server.db import schema as t
from wellcar.server.db.engine import MIGRATIONS_DIR, create_db_engine, migrate, sqlite_url
from wellcar.server.errors import ConfigError
from wellcar.server.settings import ServerSettings

from .api_support import error_of, ok
from .conftest import ADMIN_TOKEN, READ_TOKEN, FakeClock
from .server_processes import serve_processes

PROTOCOL = {"fleet-lock-protocol": "true"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
READER = {"Authorization": f"Bearer {READ_TOKEN}"}
ENDPOINTS = ("/v1/pre-reboot", "/v1/steady-state")


def params(node_id: str, group: str | None = None) -> dict[str, Any]:
    client_params: dict[str, Any] = {"id": node_id}
    if group is not None:
        client_params["group"] = group
    return {"client_params": client_params}


def pre_reboot(c: TestClient, node_id: str, group: str | None = None) -> httpx.Response:
    return c.post("/v1/pre-reboot", json=params(node_id, group), headers=PROTOCOL)


def steady_state(c: TestClient, node_id: str, group: str | None = None) -> httpx.Response:
    return c.post("/v1/steady-state", json=params(node_id, group), headers=PROTOCOL)


def rejection(resp: httpx.Response, status: int, kind: str) -> str:
    """The message of a FleetLock error body, after checking its status and kind."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"kind", "value"}, body
    assert body["kind"] == kind, body
    message: str = body["value"]
    assert message
    return message


def group_state(c: TestClient, group: str) -> dict[str, Any]:
    state: dict[str, Any] = ok(c.get(f"/api/fleetlock/groups/{group}", headers=READER))
    return state


def holder_ids(c: TestClient, group: str) -> list[str]:
    return [h["id"] for h in group_state(c, group)["holders"]]


def set_slots(c: TestClient, group: str, slots: int | None) -> dict[str, Any]:
    state: dict[str, Any] = ok(
        c.put(f"/api/fleetlock/groups/{group}", json={"slots": slots}, headers=ADMIN)
    )
    return state


@pytest.fixture
def nodes(client: TestClient) -> TestClient:
    """The server as nodes see it: no bearer token (FleetLock needs none)."""
    del client.headers["Authorization"]
    return client


# ----------------------------------------------------------------------------- protocol


def _lock_unlock_and_admin_scenario(c: TestClient) -> None:
    # Locks are owned and recursive; unlocking is idempotent.
    assert pre_reboot(c, "n1").status_code == 200
    assert pre_reboot(c, "n1").status_code == 200
    message = rejection(pre_reboot(c, "n2"), 409, "failed_lock")
    assert "'default'" in message and "1 reboot slot" in message
    assert steady_state(c, "n2").status_code == 200  # n2 holds nothing: still 200
    rejection(pre_reboot(c, "n2"), 409, "failed_lock")  # ... and n1's slot is not freed
    assert steady_state(c, "n1").status_code == 200
    assert steady_state(c, "n1").status_code == 200
    assert pre_reboot(c, "n2").status_code == 200
    assert holder_ids(c, "default") == ["n2"]
    # More slots through the admin API; lowering them keeps the holders.
    assert set_slots(c, "workers", 2)["slots"] == 2
    assert pre_reboot(c, "w1", "workers").status_code == 200
    assert pre_reboot(c, "w2", "workers").status_code == 200
    rejection(pre_reboot(c, "w3", "workers"), 409, "failed_lock")
    lowered = set_slots(c, "workers", 1)
    assert (lowered["slots"], lowered["free_slots"]) == (1, 0)
    assert [h["id"] for h in lowered["holders"]] == ["w1", "w2"]
    assert pre_reboot(c, "w2", "workers").status_code == 200  # a holder keeps its slot
    assert steady_state(c, "w1", "workers").status_code == 200
    rejection(pre_reboot(c, "w3", "workers"), 409, "failed_lock")  # 1 holder, 1 slot
    # An admin frees the slot of a node that is gone.
    assert c.delete("/api/fleetlock/groups/workers/holders/w2", headers=ADMIN).status_code == 204
    assert error_of(c.delete("/api/fleetlock/groups/workers/holders/w2", headers=ADMIN), 404)
    assert pre_reboot(c, "w3", "workers").status_code == 200
    assert holder_ids(c, "workers") == ["w3"]


def test_locks_are_owned_recursive_and_configurable(nodes: TestClient) -> None:
    _lock_unlock_and_admin_scenario(nodes)


@pytest.mark.postgres
def test_locks_are_owned_recursive_and_configurable_postgres(
    data_dir: Path, postgres_url: str
) -> None:
    app = create_app(ServerSettings(data_dir=data_dir, database_url=postgres_url))
    with TestClient(app) as c:
        _lock_unlock_and_admin_scenario(c)


def test_group_defaults_to_default(nodes: TestClient) -> None:
    bodies = [
        {"client_params": {"id": "a"}},
        {"client_params": {"id": "a", "group": ""}},
        {"client_params": {"id": "a", "group": None}},
    ]
    for body in bodies:
        assert nodes.post("/v1/pre-reboot", json=body, headers=PROTOCOL).status_code == 200
    assert holder_ids(nodes, "default") == ["a"]
    assert nodes.post("/v1/steady-state", json=bodies[1], headers=PROTOCOL).status_code == 200
    assert holder_ids(nodes, "default") == []


def test_groups_are_independent_and_ids_case_sensitive(nodes: TestClient) -> None:
    assert pre_reboot(nodes, "node", "etcd").status_code == 200
    assert pre_reboot(nodes, "node", "workers.eu-1").status_code == 200
    rejection(pre_reboot(nodes, "NODE", "etcd"), 409, "failed_lock")
    assert steady_state(nodes, "node", "etcd").status_code == 200
    assert holder_ids(nodes, "etcd") == []
    assert holder_ids(nodes, "workers.eu-1") == ["node"]


def test_early_clients_node_uuid_is_accepted(nodes: TestClient) -> None:
    body = {"client_params": {"node_uuid": "c988d2509fdf4cdcbed39037c56406fb", "group": "g"}}
    assert nodes.post("/v1/pre-reboot", json=body, headers=PROTOCOL).status_code == 200
    assert holder_ids(nodes, "g") == ["c988d2509fdf4cdcbed39037c56406fb"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_protocol_header_is_required(nodes: TestClient, endpoint: str) -> None:
    for headers in [{}, {"fleet-lock-protocol": "false"}, {"fleet-lock-protocol": "TRUE"}]:
        resp = nodes.post(endpoint, json=params("n1"), headers=headers)
        assert "fleet-lock-protocol: true" in rejection(resp, 400, "bad_request"), headers
    assert holder_ids(nodes, "default") == []


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "object"),
    (b"{}", "client_params: Field required"),
    (b'{"client_params": "n1"}', "client_params"),
    (b'{"client_params": {}}', "client_params.id must not be empty"),
    (b'{"client_params": {"id": ""}}', "client_params.id must not be empty"),
    (b'{"client_params": {"id": 5}}', "client_params.id: Input should be a valid string"),
    (b'{"client_params": {"id": null}}', "client_params.id must not be empty"),
    (json.dumps(params("x" * 256)).encode(), "longer than 255"),
    (json.dumps(params("a\nb")).encode(), "control characters"),
    (json.dumps(params("a\x00b")).encode(), "control characters"),
    (json.dumps(params("n1", "a b")).encode(), "^[a-zA-Z0-9.-]+$"),
    (json.dumps(params("n1", "gr\u00fcn")).encode(), "^[a-zA-Z0-9.-]+$"),
    (json.dumps(params("n1", "g_1")).encode(), "^[a-zA-Z0-9.-]+$"),
    (json.dumps(params("n1", "g" * 256)).encode(), "longer than 255"),
    (b'{"client_params": {"id": "n1", "group": 7}}', "client_params.group"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_bodies_are_bad_requests(nodes: TestClient, endpoint: str) -> None:
    for body, expected in BAD_BODIES:
        resp = nodes.post(endpoint, content=body, headers=PROTOCOL)
        assert expected in rejection(resp, 400, "bad_request"), body
    assert ok(nodes.get("/api/fleetlock/groups", headers=READER))["groups"] == []


def test_oversized_body_is_refused(nodes: TestClient) -> None:
    body = json.dumps({"client_params": {"id": "n1"}, "padding": "x" * 70_000})
    resp = nodes.post("/v1/pre-reboot", content=body, headers=PROTOCOL)
    assert "over" in rejection(resp, 413, "bad_request")
    assert holder_ids(nodes, "default") == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
client_params_values = st.dictionaries(st.sampled_from(["id", "group", "node_uuid"]), json_values)
hostile_bodies = json_values | st.fixed_dictionaries({"client_params": client_params_values})


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(endpoint=st.sampled_from(ENDPOINTS), body=hostile_bodies)
def test_arbitrary_bodies_never_fail_the_server(
    nodes: TestClient, endpoint: str, body: Any
) -> None:
    resp = nodes.post(endpoint, content=json.dumps(body), headers=PROTOCOL)
    assert resp.status_code in (200, 400, 409), resp.text
    if resp.status_code != 200:
        assert set(resp.json()) == {"kind", "value"}


def test_database_failure_is_a_503_to_retry(nodes: TestClient) -> None:
    engine = nodes.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE fleetlock_holder"))
    assert "try again" in rejection(pre_reboot(nodes, "n1"), 503, "failed_lock")
    assert "try again" in rejection(steady_state(nodes, "n1"), 503, "failed_unlock")
    assert error_of(nodes.get("/api/fleetlock/groups", headers=READER), 503)
    metric = 'wellcar_fleetlock_requests_total{operation="pre-reboot",result="database_error"} 1.0'
    assert metric in nodes.get("/metrics").text


# -------------------------------------------------------------------------------- admin


def test_group_listing(nodes: TestClient, clock: FakeClock) -> None:
    assert pre_reboot(nodes, "first", "g1").status_code == 200
    clock.advance(minutes=5)
    set_slots(nodes, "g1", 3)
    assert pre_reboot(nodes, "second", "g1").status_code == 200
    set_slots(nodes, "configured", 0)
    listing = ok(nodes.get("/api/fleetlock/groups", headers=READER))
    assert listing["default_slots"] == 1
    assert [g["name"] for g in listing["groups"]] == ["configured", "g1"]
    configured, g1 = listing["groups"]
    assert configured == {
        "name": "configured",
        "slots": 0,
        "configured_slots": 0,
        "free_slots": 0,
        "holders": [],
        "updated_at": "2026-11-18T10:05:00Z",
    }
    assert (g1["slots"], g1["configured_slots"], g1["free_slots"]) == (3, 3, 1)
    assert g1["holders"] == [
        {"id": "first", "acquired_at": "2026-11-18T10:00:00Z"},
        {"id": "second", "acquired_at": "2026-11-18T10:05:00Z"},
    ]
    # A group nobody used or configured has the default slots.
    unknown = group_state(nodes, "never-seen")
    assert (unknown["slots"], unknown["configured_slots"], unknown["holders"]) == (1, None, [])
    assert unknown["updated_at"] is None
    # Back to the default.
    back = set_slots(nodes, "g1", None)
    assert (back["slots"], back["configured_slots"], back["free_slots"]) == (1, None, 0)


def test_zero_slots_hold_every_reboot(nodes: TestClient) -> None:
    set_slots(nodes, "frozen", 0)
    message = rejection(pre_reboot(nodes, "n1", "frozen"), 409, "failed_lock")
    assert "no reboot slots" in message


def test_force_release_of_ids_with_slashes(nodes: TestClient) -> None:
    assert pre_reboot(nodes, "rack1/node 7", "g").status_code == 200
    path = "/api/fleetlock/groups/g/holders/rack1/node%207"
    assert nodes.delete(path, headers=ADMIN).status_code == 204
    assert holder_ids(nodes, "g") == []
    assert steady_state(nodes, "rack1/node 7", "g").status_code == 200


def test_bad_slots_are_refused(nodes: TestClient) -> None:
    bodies: list[Any] = [
        {"slots": -1},
        {"slots": 100_001},
        {"slots": "2"},
        {"slots": True},
        {"slots": 1.5},
        {},
        [],
        {"slot": 2},
    ]
    for body in bodies:
        message = error_of(nodes.put("/api/fleetlock/groups/g", json=body, headers=ADMIN), 400)
        assert "slots" in message or "request body" in message, body
    assert group_state(nodes, "g")["configured_slots"] is None


def test_bad_names_in_admin_paths_are_refused(nodes: TestClient) -> None:
    too_long = "g" * 256
    for method, path in [
        ("GET", "/api/fleetlock/groups/a_b"),
        ("PUT", "/api/fleetlock/groups/a%20b"),
        ("PUT", f"/api/fleetlock/groups/{too_long}"),
        ("DELETE", "/api/fleetlock/groups/a_b/holders/n1"),
        ("DELETE", "/api/fleetlock/groups/g/holders/a%01b"),
    ]:
        resp = nodes.request(method, path, json={"slots": 1}, headers=ADMIN)
        assert error_of(resp, 400), (method, path)
    assert ok(nodes.get("/api/fleetlock/groups", headers=READER))["groups"] == []


def test_admin_api_needs_tokens(nodes: TestClient) -> None:
    assert pre_reboot(nodes, "n1").status_code == 200
    writes = [
        ("PUT", "/api/fleetlock/groups/default"),
        ("DELETE", "/api/fleetlock/groups/default/holders/n1"),
    ]
    reads = [("GET", "/api/fleetlock/groups"), ("GET", "/api/fleetlock/groups/default")]
    for method, path in writes + reads:
        resp = nodes.request(method, path, json={"slots": 5})
        assert "bearer token" in error_of(resp, 401), path
        resp = nodes.request(method, path, json={"slots": 5}, headers={"Authorization": "Bearer x"})
        assert error_of(resp, 401), path
    for method, path in writes:
        resp = nodes.request(method, path, json={"slots": 5}, headers=READER)
        assert "read-only" in error_of(resp, 403), path
    for _, path in reads:
        ok(nodes.get(path, headers=READER))
    state = group_state(nodes, "default")
    assert (state["configured_slots"], holder_ids(nodes, "default")) == (None, ["n1"])


def test_openapi_documents_fleetlock(nodes: TestClient) -> None:
    paths = ok(nodes.get("/openapi.json"))["paths"]
    assert set(paths["/v1/pre-reboot"]) == {"post"}
    assert "409" in paths["/v1/pre-reboot"]["post"]["responses"]
    assert set(paths["/api/fleetlock/groups/{group}"]) == {"get", "put"}
    assert set(paths["/api/fleetlock/groups/{group}/holders/{node_id}"]) == {"delete"}
    for path, item in paths.items():
        if "fleetlock" in path or path.startswith(ENDPOINTS):
            for operation in item.values():
                assert "422" not in operation["responses"], path


# --------------------------------------------------------- settings, metrics and logs


def test_default_slots_setting(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_ = ServerSettings(data_dir=data_dir, fleetlock_default_slots=2)
    with TestClient(create_app(settings_)) as c:
        assert pre_reboot(c, "a").status_code == 200
        assert pre_reboot(c, "b").status_code == 200
        rejection(pre_reboot(c, "c"), 409, "failed_lock")
        assert group_state(c, "default")["slots"] == 2
    # Worker processes get their settings through the environment.
    for name, value in settings_to_env(ServerSettings(data_dir, fleetlock_default_slots=3)).items():
        monkeypatch.setenv(name, value)
    worker_app = app_from_env()
    assert worker_app.state.fleetlock.default_slots == 3
    worker_app.state.engine.dispose()
    with pytest.raises(ConfigError):
        create_app(ServerSettings(data_dir=data_dir, fleetlock_default_slots=-1))


def test_serve_has_the_default_slots_option() -> None:
    result = CliRunner().invoke(wellcar_cli, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--fleetlock-default-slots" in result.output
    result = CliRunner().invoke(wellcar_cli, ["serve", "--fleetlock-default-slots", "-1"])
    assert result.exit_code == 2


def test_metrics(nodes: TestClient) -> None:
    set_slots(nodes, "workers", 2)
    pre_reboot(nodes, "n1")
    pre_reboot(nodes, "n1")
    pre_reboot(nodes, "n2")
    pre_reboot(nodes, "w1", "workers")
    steady_state(nodes, "w1", "workers")
    steady_state(nodes, "w1", "workers")
    nodes.post("/v1/pre-reboot", json=params("n3"))
    text_ = nodes.get("/metrics").text
    for line in [
        'wellcar_fleetlock_holders{group="default"} 1.0',
        'wellcar_fleetlock_holders{group="workers"} 0.0',
        'wellcar_fleetlock_slots{group="default"} 1.0',
        'wellcar_fleetlock_slots{group="workers"} 2.0',
        'wellcar_fleetlock_requests_total{operation="pre-reboot",result="locked"} 2.0',
        'wellcar_fleetlock_requests_total{operation="pre-reboot",result="already_held"} 1.0',
        'wellcar_fleetlock_requests_total{operation="pre-reboot",result="group_full"} 1.0',
        'wellcar_fleetlock_requests_total{operation="pre-reboot",result="bad_request"} 1.0',
        'wellcar_fleetlock_requests_total{operation="steady-state",result="released"} 1.0',
        'wellcar_fleetlock_requests_total{operation="steady-state",result="not_held"} 1.0',
    ]:
        assert line in text_, line


def test_every_lock_and_unlock_is_logged(
    nodes: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wellcar.server.fleetlock"):
        pre_reboot(nodes, "n1")
        pre_reboot(nodes, "n 2")
        steady_state(nodes, "n1")
        nodes.delete("/api/fleetlock/groups/default/holders/n1", headers=ADMIN)
        set_slots(nodes, "default", 4)
        pre_reboot(nodes, "n3")
        nodes.delete("/api/fleetlock/groups/default/holders/n3", headers=ADMIN)
    formatter = LogfmtFormatter(with_time=False)
    lines = [
        formatter.format(r).split(" ", 2)[2]
        for r in caplog.records
        if r.name == "wellcar.server.fleetlock"
    ]
    assert lines == [
        'msg="fleetlock pre-reboot" result=locked group=default node_id=n1 holders=1 slots=1',
        'msg="fleetlock pre-reboot" result=group_full group=default node_id="n 2" holders=1 '
        "slots=1",
        'msg="fleetlock steady-state" result=released group=default node_id=n1 holders=0',
        'msg="fleetlock slots-set" group=default slots=4 holders=0',
        'msg="fleetlock pre-reboot" result=locked group=default node_id=n3 holders=1 slots=4',
        'msg="fleetlock force-release" group=default node_id=n3',
    ]


# ----------------------------------------------------------------- migration 0001 → 0002


def _alembic(conn: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade_keeps_data_and_downgrades(url: str) -> None:
    engine = create_db_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO instance (id, ip, alias, oem, oem_version, aleph_version, created_ts)"
                " VALUES ('m1', '', '', '', '', '', '2026-01-01')"
            )
        )
    migrate(engine)
    with engine.begin() as conn:
        assert {"fleetlock_group", "fleetlock_holder"} <= set(inspect(conn).get_table_names())
        assert conn.execute(select(func.count()).select_from(t.instance)).scalar_one() == 1
        command.downgrade(_alembic(conn), "0001")
        assert "fleetlock_group" not in inspect(conn).get_table_names()
    migrate(engine)
    engine.dispose()


def test_migration_0002_sqlite(tmp_path: Path) -> None:
    _upgrade_keeps_data_and_downgrades(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_migration_0002_postgres(postgres_url: str) -> None:
    _upgrade_keeps_data_and_downgrades(postgres_url)


# ---------------------------------------------------------------------- concurrency

SERVERS = 3
NODES = 48  # 24 race for the 3 slots of "race", 24 for the 1 default slot of "fresh"
RACE_SLOTS = 3


SERVER_ENV = {"WELLCAR_ADMIN_TOKEN": "a", "WELLCAR_READ_TOKEN": "r"}


def _race(http: httpx.Client, urls: list[str], requests: list[tuple[str, str]]) -> list[int]:
    """Send (node id, group) pre-reboots all at once, spread over the servers."""

    def send(i: int) -> int:
        node_id, group = requests[i]
        resp = http.post(
            f"{urls[i % len(urls)]}/v1/pre-reboot",
            json=params(node_id, group),
            headers=PROTOCOL,
        )
        assert resp.status_code in (200, 409), resp.text
        return resp.status_code

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, range(len(requests))))


def _holders_in_database(url: str) -> dict[str, set[str]]:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(t.fleetlock_holder.c.group_name, t.fleetlock_holder.c.node_id))
        by_group: dict[str, set[str]] = {}
        for group, node_id in rows:
            by_group.setdefault(group, set()).add(node_id)
    engine.dispose()
    return by_group


def _run_fleetlock_race(tmp_path: Path, database: str | None) -> None:
    data_dir = tmp_path / "data"
    url = database or sqlite_url(data_dir)
    limits = httpx.Limits(max_connections=NODES, max_keepalive_connections=NODES)
    with (
        serve_processes(data_dir, SERVERS, database, SERVER_ENV) as urls,
        httpx.Client(limits=limits, timeout=60) as http,
    ):
        admin = {"Authorization": "Bearer a"}
        resp = http.put(f"{urls[0]}/api/fleetlock/groups/race", json={"slots": 3}, headers=admin)
        assert resp.status_code == 200, resp.text
        # "fresh" has no row yet: the racers also race to create it.
        requests = [(f"node-{i}", "race" if i % 2 else "fresh") for i in range(NODES)]
        statuses = _race(http, urls, requests)
        winners = {requests[i] for i, status in enumerate(statuses) if status == 200}
        assert statuses.count(200) == RACE_SLOTS + 1, statuses
        held = _holders_in_database(url)
        assert {g: len(ids) for g, ids in held.items()} == {"race": RACE_SLOTS, "fresh": 1}
        assert {(node, g) for g, ids in held.items() for node in ids} == winners
        # The winners reboot and report steady state; everyone else races again for the slots.
        for i, (node_id, group) in enumerate(sorted(winners)):
            resp = http.post(
                f"{urls[i % SERVERS]}/v1/steady-state",
                json=params(node_id, group),
                headers=PROTOCOL,
            )
            assert resp.status_code == 200, resp.text
        losers = [r for r in requests if r not in winners]
        statuses = _race(http, urls, losers)
        assert statuses.count(200) == RACE_SLOTS + 1, statuses
        held = _holders_in_database(url)
        assert {g: len(ids) for g, ids in held.items()} == {"race": RACE_SLOTS, "fresh": 1}
        assert not {(node, g) for g, ids in held.items() for node in ids} & winners
        # Every process reports the same holders (the state is in the database).
        reader = {"Authorization": "Bearer r"}
        for server in urls:
            listing = http.get(f"{server}/api/fleetlock/groups", headers=reader).json()
            assert {g["name"]: len(g["holders"]) for g in listing["groups"]} == {
                "fresh": 1,
                "race": RACE_SLOTS,
            }


@pytest.mark.slow
def test_slots_hold_under_concurrency_sqlite(tmp_path: Path) -> None:
    _run_fleetlock_race(tmp_path, None)


@pytest.mark.slow
@pytest.mark.postgres
def test_slots_hold_under_concurrency_postgres(tmp_path: Path, postgres_url: str) -> None:
    _run_fleetlock_race(tmp_path, postgres_url)
