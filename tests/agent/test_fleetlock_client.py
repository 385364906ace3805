"""The FleetLock client against a tiny FleetLock server running in this test (127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.loopback_ports import free_port
from wellcar.agent.fleetlock_client import (
    FleetLockClient,
    FleetLockConfigError,
    FleetLockRefusedError,
    FleetLockUnavailableError,
    app_specific_machine_id,
)
from wellcar.agent.reboot import FleetLockRebootStrategy, RebootAction


@dataclass
class LockServer:
    """A counting semaphore per group with recursive, owned locks (airlock's semantics)."""

    slots: int = 1
    holders: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> status, to
    canned: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> status, body
    prefix: str = ""
    url: str = ""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        if headers.get("fleet-lock-protocol") != "true":
            return 400, {"kind": "missing_header", "value": "fleet-lock-protocol header missing"}
        try:
            params = json.loads(body)["client_params"]
            node, group = str(params["id"]), str(params["group"])
        except (ValueError, KeyError, TypeError):
            return 400, {"kind": "invalid_body", "value": "no client_params"}
        holders = self.holders.setdefault(group, [])
        if path == "/v1/pre-reboot":
            if node in holders:
                return 200, {}
            if len(holders) >= self.slots:
                return 409, {"kind": "failed_lock", "value": f"all {self.slots} slots taken"}
            holders.append(node)
            return 200, {}
        if path == "/v1/steady-state":
            if node in holders:
                holders.remove(node)
            return 200, {}
        return 404, {"kind": "not_found", "value": path}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        state.requests.append((self.path, headers, body))
        if self.path in state.redirects:
            status, location = state.redirects[self.path]
            self.send_response(status)
            self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if state.delay:
            time.sleep(state.delay)
        if self.path in state.canned:
            status, raw = state.canned[self.path]
        else:
            path = self.path.removeprefix(state.prefix)
            status, document = state.handle(path, headers, body)
            raw = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LockServer


@pytest.fixture
def start_server() -> Iterator[type[LockServer]]:
    servers: list[_Server] = []

    def start(**kwargs: object) -> LockServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = LockServer(**kwargs)  # type: ignore[arg-type]
        server.state.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server.state

    yield start  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def lock(start_server: type[LockServer]) -> LockServer:
    return start_server(slots=1)


def test_a_free_slot_is_granted_with_the_protocol_header_and_body(lock: LockServer) -> None:
    with FleetLockClient(lock.url, "node-1", "workers") as client:
        client.pre_reboot()
    assert lock.holders == {"workers": ["node-1"]}
    path, headers, body = lock.requests[0]
    assert path == "/v1/pre-reboot"
    assert headers["fleet-lock-protocol"] == "true"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"client_params": {"id": "node-1", "group": "workers"}}


def test_a_full_group_refuses_with_409_and_the_servers_message(lock: LockServer) -> None:
    with (
        FleetLockClient(lock.url, "node-1") as first,
        FleetLockClient(lock.url, "node-2") as second,
    ):
        first.pre_reboot()
        first.pre_reboot()  # recursive: the holder may ask again
        with pytest.raises(FleetLockRefusedError) as refused:
            second.pre_reboot()
        assert refused.value.status == 409 and refused.value.lock_held_elsewhere
        assert (refused.value.kind, refused.value.value) == ("failed_lock", "all 1 slots taken")
        assert "HTTP 409 (failed_lock: all 1 slots taken)" in str(refused.value)
        first.steady_state()
        second.pre_reboot()  # the released slot is free again
    assert lock.holders == {"default": ["node-2"]}


def test_groups_have_their_own_slots(lock: LockServer) -> None:
    FleetLockClient(lock.url, "a", "workers").pre_reboot()
    FleetLockClient(lock.url, "b", "controllers").pre_reboot()
    assert lock.holders == {"workers": ["a"], "controllers": ["b"]}


def test_a_base_url_with_a_path_keeps_it(start_server: type[LockServer]) -> None:
    server = start_server(prefix="/fleetlock")
    FleetLockClient(server.url + "/fleetlock", "n").pre_reboot()
    FleetLockClient(server.url + "/fleetlock/", "n").steady_state()
    assert [r[0] for r in server.requests] == [
        "/fleetlock/v1/pre-reboot",
        "/fleetlock/v1/steady-state",
    ]


def test_errors_without_a_json_message_are_reported_with_the_body(lock: LockServer) -> None:
    lock.canned["/v1/pre-reboot"] = (500, b"etcd unavailable\n")
    with pytest.raises(FleetLockRefusedError, match=r"HTTP 500 \(etcd unavailable\)"):
        FleetLockClient(lock.url, "n").pre_reboot()


def test_a_slow_server_times_out(lock: LockServer) -> None:
    lock.delay = 3.0
    started = time.monotonic()
    with pytest.raises(FleetLockUnavailableError, match="timed out"):
        FleetLockClient(lock.url, "n", timeout=0.3).pre_reboot()
    assert time.monotonic() - started < 2.5


def test_nothing_listening_is_unavailable() -> None:
    port = free_port()
    with pytest.raises(FleetLockUnavailableError):
        FleetLockClient(f"http://127.0.0.1:{port}", "n", timeout=2).pre_reboot()


def test_a_redirect_to_another_host_is_not_followed(start_server: type[LockServer]) -> None:
    elsewhere = start_server()
    lock = start_server()
    port = elsewhere.url.rsplit(":", 1)[1]
    lock.redirects["/v1/pre-reboot"] = (307, f"http://localhost:{port}/v1/pre-reboot")
    with pytest.raises(FleetLockUnavailableError, match="another host"):
        FleetLockClient(lock.url, "n").pre_reboot()
    assert elsewhere.requests == []


def test_a_same_host_307_is_followed_with_the_body(start_server: type[LockServer]) -> None:
    lock = start_server()
    lock.redirects["/v1/pre-reboot"] = (307, "/new/v1/pre-reboot")
    lock.prefix = "/new"
    FleetLockClient(lock.url, "n", "g").pre_reboot()
    assert lock.holders == {"g": ["n"]}
    assert [r[0] for r in lock.requests] == ["/v1/pre-reboot", "/new/v1/pre-reboot"]


def test_a_302_is_not_followed_because_it_would_turn_the_post_into_a_get(
    lock: LockServer,
) -> None:
    lock.redirects["/v1/pre-reboot"] = (302, "/v1/elsewhere")
    with pytest.raises(FleetLockRefusedError, match="HTTP 302"):
        FleetLockClient(lock.url, "n").pre_reboot()
    assert len(lock.requests) == 1


def test_redirect_loops_end(lock: LockServer) -> None:
    lock.redirects["/v1/pre-reboot"] = (308, "/v1/pre-reboot")
    with pytest.raises(FleetLockUnavailableError, match="redirects"):
        FleetLockClient(lock.url, "n").pre_reboot()
    assert len(lock.requests) == 4


@pytest.mark.parametrize(
    ("base", "node", "group"),
    [
        ("ftp://127.0.0.1/", "n", "default"),
        ("127.0.0.1:8080", "n", "default"),
        ("http://127.0.0.1/", "", "default"),
        ("http://127.0.0.1/", "n\nx", "default"),
        ("http://127.0.0.1/", "n", "bad group"),
        ("http://127.0.0.1/", "n", "workers/1"),
        ("http://127.0.0.1/", "n", ""),
    ],
)
def test_bad_settings_are_refused_before_any_request(base: str, node: str, group: str) -> None:
    with pytest.raises(FleetLockConfigError):
        FleetLockClient(base, node, group)


def test_the_node_id_is_systemds_app_specific_machine_id() -> None:
    # From systemd 252 on a machine whose /etc/machine-id is 3d1219c7c4c5404aaa1f6d2a48adfda4:
    # `systemd-id128 machine-id --app-specific=de35106b6ec24688b63afddaa156679b` (Zincati's).
    assert app_specific_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4") == (
        "975228d46dc94622b9bbe16671e2b58d"
    )
    with pytest.raises(FleetLockConfigError):
        app_specific_machine_id("not-hex")
    with pytest.raises(FleetLockConfigError):
        app_specific_machine_id("abcd")


def test_two_nodes_take_turns_through_the_reboot_strategy(lock: LockServer) -> None:
    first = FleetLockRebootStrategy(FleetLockClient(lock.url, "node-1"))
    second = FleetLockRebootStrategy(FleetLockClient(lock.url, "node-2"))
    now = datetime(2026, 5, 4, 12, 0)
    assert first.decide(now).action is RebootAction.REBOOT
    waiting = second.decide(now)
    assert (waiting.action, waiting.retry_at) == (RebootAction.WAIT, now + timedelta(seconds=5))
    assert "all 1 slots taken" in waiting.reason
    # node-1 comes back up, is assessed good and releases its slot.
    assert first.after_boot(now + timedelta(seconds=3)) is None
    assert second.decide(now + timedelta(seconds=5)).action is RebootAction.REBOOT
    assert lock.holders == {"default": ["node-2"]}
