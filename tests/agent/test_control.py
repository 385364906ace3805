"""The control socket, end to end: a real UpdateAgent on a disk image file (FileSlotBackend),
its loop in a thread, a loopback Omaha server that also serves a real signed payload, and
clients talking over the Unix socket."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_ports import free_port
from tests.tiny_layout import TINY
from wellcar.agent.assemble import build_parts
from wellcar.agent.config import AgentConfig, RebootStrategy
from wellcar.agent.control import (
    MAX_REQUEST_BYTES,
    AgentAlreadyRunningError,
    AgentNotRunningError,
    AgentService,
    ControlCommandError,
    ControlError,
    ControlTimeoutError,
    StatusFeed,
    request,
)
from wellcar.agent.daemon import UpdateAgent
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.agent.state import UpdateState
from wellcar.disk import GptPrio, Slot, SlotState, create_disk_image
from wellcar.omaha import (
    FLATCAR_APP_ID,
    Action,
    AppResponse,
    Manifest,
    Package,
    Response,
    UpdateCheckResponse,
    parse_request,
    render_response,
)
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import (
    KeyAlgorithm,
    TrustedKeys,
    generate_key,
    load_signing_key,
    load_trusted_keys,
    write_key_pair,
)

NEW_VERSION = "2.0.0"
PAYLOAD_NAME = "wellcar_update.gz"


# ------------------------------------------------------------------------- the payload


@dataclass(frozen=True)
class SignedPayload:
    data: bytes
    public_key: Path

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()

    @property
    def sha1_b64(self) -> str:
        return base64.b64encode(hashlib.sha1(self.data).digest()).decode()


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> SignedPayload:
    work = tmp_path_factory.mktemp("payload")
    write_key_pair(generate_key(KeyAlgorithm.ED25519), work / "k.key", work / "k.pub")
    usr = work / "usr.img"
    usr.write_bytes(os.urandom(96 * 1024) + bytes(160 * 1024))
    out = work / "update.crau"
    options = GenerateOptions(zstd_level=1, workers=1, try_bsdiff=False)
    generate_payload(PayloadInputs(usr), out, [load_signing_key(work / "k.key")], options)
    return SignedPayload(out.read_bytes(), work / "k.pub")


# ------------------------------------------------------------- a loopback Omaha server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OmahaStub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        app = parse_request(body, self.headers.get("Content-Type")).apps[0]
        srv = self.server
        reply = AppResponse(appid=FLATCAR_APP_ID, event_statuses=["ok"] * len(app.events))
        if app.ping is not None:
            reply.ping_status = "ok"
        if app.updatecheck is not None:
            srv.checks += 1
            reply.updatecheck = srv.answer()
        self._send(200, render_response(Response(apps=[reply])), "text/xml")

    def do_GET(self) -> None:
        srv = self.server
        if self.path != f"/payload/{PAYLOAD_NAME}" or srv.payload is None:
            self._send(404, b"not found", "text/plain")
            return
        srv.downloads += 1
        srv.gate.wait(30)
        self._send(200, srv.payload.data, "application/octet-stream")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class OmahaStub(ThreadingHTTPServer):
    """Answers update checks with no update, or with ``payload`` once one is published;
    serves the payload at /payload/ (held back while ``gate`` is clear)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload: SignedPayload | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.version = NEW_VERSION  # what an offer offers
        self.checks = 0
        self.downloads = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def answer(self) -> UpdateCheckResponse:
        if self.payload is None:
            return UpdateCheckResponse(status="noupdate")
        p = self.payload
        package = Package(name=PAYLOAD_NAME, size=len(p.data), hash=p.sha1_b64)
        manifest = Manifest(
            version=self.version,
            packages=[package],
            actions=[Action(event="postinstall", sha256=p.sha256_b64)],
        )
        return UpdateCheckResponse(status="ok", urls=[self.url("/payload/")], manifests=[manifest])


@pytest.fixture
def omaha() -> Iterator[OmahaStub]:
    srv = OmahaStub()
    threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True).start()
    yield srv
    srv.gate.set()
    srv.shutdown()
    srv.server_close()


# ------------------------------------------------------------------------------ a node


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temporary directory with a short path: a Unix socket path has at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="wc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Node:
    """A simulated node: its disk image, config and trusted keys."""

    image: Path
    config: AgentConfig
    keys: TrustedKeys

    @property
    def socket(self) -> Path:
        return self.config.state_dir / "agent.sock"

    def backend(self) -> FileSlotBackend:
        return FileSlotBackend(self.image, self.config.state_dir)

    def agent(self) -> UpdateAgent:
        backend = self.backend()
        if not backend.powered_on or backend.reboot_requested:
            backend.power_on()
        identity = NodeIdentity(
            version=self.config.version,
            board="amd64-usr",
            machine_id=uuid.uuid5(uuid.NAMESPACE_URL, str(self.image)).hex,
            boot_id=str(uuid.UUID(backend.boot_id())),
        )
        return UpdateAgent(build_parts(self.config, identity, backend, trusted_keys=self.keys))


def make_node(directory: Path, server_url: str | None, payload: SignedPayload) -> Node:
    """A node running 1.0.0 on slot A, checking only when asked, never rebooting itself."""
    image = directory / "node.img"
    create_disk_image(image, TINY, seed="control-tests")
    config = AgentConfig(
        server=server_url,
        default_server=server_url,
        version="1.0.0",
        board="amd64-usr",
        reboot_strategy=RebootStrategy.OFF,
        health_units=(),
        check_initial_delay=timedelta(hours=1),
        check_interval=timedelta(hours=1),
        check_fuzz=timedelta(0),
        http_timeout=timedelta(seconds=10),
        root=directory,
        state_dir=directory / "state",
        payload_key_dir=payload.public_key.parent,
    )
    return Node(image, config, load_trusted_keys([payload.public_key]))


@pytest.fixture
def node(short_dir: Path, omaha: OmahaStub, payload: SignedPayload) -> Node:
    return make_node(short_dir, omaha.url("/v1/update/"), payload)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@contextlib.contextmanager
def running(node: Node) -> Iterator[AgentService]:
    """The agent's loop and control server, as `wellcar agent run` runs them."""
    service = AgentService(node.agent())
    with service.running():
        wait_until(lambda: service.agent.report is not None)  # booted and assessed
        yield service
    assert service.join(5), "the loop did not stop"


@pytest.fixture
def service(node: Node) -> Iterator[AgentService]:
    with running(node) as svc:
        yield svc


def ask(node: Node, command: str, timeout: float = 20.0, **arguments: Any) -> dict[str, Any]:
    return request(node.socket, command, timeout=timeout, **arguments)


def slots(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["slot"]: s for s in response["slots"]}


def raw_exchange(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        answer = sock.makefile("rb").readline()
    result: dict[str, Any] = json.loads(answer)
    return result


# --------------------------------------------------------------------------- commands


def test_status_answers_from_the_running_agent(service: AgentService, node: Node) -> None:
    mode = node.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    response = ask(node, "status")
    assert response["ok"] and response["command"] == "status"
    assert response["daemon"]["running"] and response["daemon"]["pid"] == os.getpid()
    assert not response["daemon"]["busy"]
    assert response["status"]["state"] == UpdateState.IDLE.value
    assert response["status"]["current_version"] == "1.0.0"
    assert response["config"]["server"] == node.config.server
    assert response["boot"]["outcome"] == "already-good"
    by_slot = slots(response)
    assert (by_slot["A"]["state"], by_slot["A"]["active"]) == (SlotState.GOOD.value, True)
    assert (by_slot["B"]["state"], by_slot["B"]["active"]) == (SlotState.EMPTY.value, False)
    assert response["slots_error"] is None


def test_check_asks_the_loop_and_reports_no_update(
    service: AgentService, node: Node, omaha: OmahaStub
) -> None:
    response = ask(node, "check", wait=15)
    assert response["result"] == "no-update", response
    assert response["status"]["state"] == UpdateState.IDLE.value
    assert response["status"]["last_check_time"] is not None
    assert omaha.checks == 1


def test_check_finds_an_update_which_the_loop_installs_then_reset_forgets_it(
    service: AgentService, node: Node, omaha: OmahaStub, payload: SignedPayload
) -> None:
    omaha.payload = payload
    response = ask(node, "check", wait=15)
    assert response["result"] == "update-available", response
    assert NEW_VERSION in response["message"]
    wait_until(
        lambda: ask(node, "status")["status"]["state"] == UpdateState.UPDATED_NEED_REBOOT.value
    )
    status = ask(node, "status")
    assert status["status"]["new_version"] == NEW_VERSION
    b = slots(status)["B"]
    assert (b["state"], b["version"], b["tries"]) == (SlotState.BOOTABLE.value, NEW_VERSION, 1)
    # Checking again only reports what waits for the reboot.
    again = ask(node, "check", wait=15)
    assert again["result"] == "updated-need-reboot"
    assert omaha.downloads == 1

    reset = ask(node, "reset")
    assert reset["status"]["state"] == UpdateState.IDLE.value
    assert reset["status"]["new_version"] is None
    after = slots(ask(node, "status"))
    assert after["B"]["state"] == SlotState.BAD.value  # will never boot
    assert after["A"]["active"] and after["A"]["state"] == SlotState.GOOD.value


def test_update_answers_when_the_install_is_done(
    service: AgentService, node: Node, omaha: OmahaStub, payload: SignedPayload
) -> None:
    assert ask(node, "update")["result"] == "no-update"
    omaha.payload = payload
    response = ask(node, "update")
    assert response["result"] == "updated-need-reboot", response
    assert response["message"] == f"update {NEW_VERSION} installed: reboot needed"
    assert response["status"]["state"] == UpdateState.UPDATED_NEED_REBOOT.value
    table = node.backend().slot_table()
    assert table.slot(Slot.B).state is SlotState.BOOTABLE
    assert table.slot(Slot.B).prio.priority > table.slot(Slot.A).prio.priority


def test_a_failed_check_is_reported_with_its_error(short_dir: Path, payload: SignedPayload) -> None:
    port = free_port()  # a port nobody listens on
    node = make_node(short_dir, f"http://127.0.0.1:{port}/v1/update/", payload)
    with running(node):
        response = ask(node, "check", wait=15)
        assert response["result"] == "check-failed", response
        assert response["message"].startswith("update check failed (code 2): ")
        assert ask(node, "update")["result"] == "check-failed"


def test_an_unusable_answer_is_a_failed_check(
    service: AgentService, node: Node, omaha: OmahaStub, payload: SignedPayload
) -> None:
    omaha.payload, omaha.version = payload, "0.9.0"  # older than what runs: refused (34)
    response = ask(node, "check", wait=15)
    assert response["result"] == "check-failed", response
    assert response["message"].startswith("update check failed (code 34): ")
    assert omaha.downloads == 0


def test_checks_are_refused_when_updates_are_disabled(
    short_dir: Path, payload: SignedPayload
) -> None:
    node = make_node(short_dir, None, payload)
    with running(node):
        for command in ("check", "update"):
            with pytest.raises(ControlCommandError, match="updates are disabled"):
                ask(node, command)
        status = ask(node, "status")
        assert status["config"]["server"] is None
        assert status["boot"]["outcome"] == "already-good"  # boots are still assessed


def test_while_an_update_runs_status_answers_and_reset_rollback_are_refused(
    service: AgentService, node: Node, omaha: OmahaStub, payload: SignedPayload
) -> None:
    omaha.payload = payload
    omaha.gate.clear()  # the download hangs until the gate opens
    assert ask(node, "check", wait=15)["result"] == "update-available"
    wait_until(lambda: ask(node, "status")["status"]["state"] == UpdateState.DOWNLOADING.value)
    assert ask(node, "status")["daemon"]["busy"]
    assert ask(node, "check")["result"] == "in-progress"
    for command in ("reset", "rollback"):
        with pytest.raises(ControlCommandError, match="an update is in progress"):
            ask(node, command)
    omaha.gate.set()
    wait_until(
        lambda: ask(node, "status")["status"]["state"] == UpdateState.UPDATED_NEED_REBOOT.value
    )


def test_rollback_after_an_update_boots_the_old_slot_next(
    node: Node, omaha: OmahaStub, payload: SignedPayload
) -> None:
    with running(node):
        with pytest.raises(ControlCommandError, match="slot B is empty"):
            ask(node, "rollback")  # nothing to roll back to yet
        omaha.payload = payload
        assert ask(node, "update")["result"] == "updated-need-reboot"
    backend = node.backend()
    backend.reboot()
    assert backend.power_on().slot is Slot.B  # the update boots on trial...
    omaha.payload = None
    with running(node):
        status = ask(node, "status")
        assert status["boot"]["outcome"] == "first-boot-good"  # ...and is found good
        assert slots(status)["B"]["active"] and slots(status)["B"]["state"] == "good"
        response = ask(node, "rollback")
        assert response["slot"]["slot"] == "A"
    table = node.backend().slot_table()
    assert table.slot(Slot.A).prio.priority > table.slot(Slot.B).prio.priority
    backend.reboot()
    assert backend.power_on().slot is Slot.A
    assert table.slot(Slot.A).prio == GptPrio(2, 0, True)


# --------------------------------------------------------------------------- protocol


def test_unknown_commands_and_malformed_requests_get_a_clear_error(
    service: AgentService, node: Node
) -> None:
    with pytest.raises(ControlCommandError) as info:
        ask(node, "frobnicate")
    assert str(info.value) == (
        "unknown command 'frobnicate' (known: status, check, update, reset, rollback, "
        "install, need-reboot)"
    )
    assert raw_exchange(node.socket, b"hello\n") == {
        "ok": False,
        "error": "the request is not one JSON object on one line",
    }
    assert raw_exchange(node.socket, b"[1, 2]\n")["error"] == "the request is not a JSON object"
    for wait in (b"-1", b"NaN", b'"soon"', b"true"):
        answer = raw_exchange(node.socket, b'{"command":"check","wait":' + wait + b"}\n")
        assert answer["error"] == "'wait' must be a number of seconds >= 0", wait
    huge = b'{"command": "status", "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}\n'
    assert raw_exchange(node.socket, huge)["error"] == (
        f"request larger than {MAX_REQUEST_BYTES} bytes"
    )
    # The server is still fine after all that.
    assert ask(node, "status")["ok"]


def test_a_silent_client_is_cut_off(
    service: AgentService, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wellcar.agent import control

    monkeypatch.setattr(control._Handler, "timeout", 0.2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(node.socket))
        answer = json.loads(sock.makefile("rb").readline())
    assert answer["ok"] is False and answer["error"].startswith("no request within")
    assert ask(node, "status")["ok"]


def test_one_agent_per_state_directory(service: AgentService, node: Node) -> None:
    other = AgentService(node.agent())
    with pytest.raises(AgentAlreadyRunningError, match=f"pid {os.getpid()}"):
        other.start()
    assert ask(node, "status")["ok"]  # the first one is untouched


def test_a_stale_socket_is_replaced_and_removed_on_close(node: Node) -> None:
    node.config.state_dir.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(node.socket))  # a crashed agent's socket file
    with running(node):
        assert ask(node, "status")["ok"]
    assert not node.socket.exists()
    with running(node):  # the lock was released too
        assert ask(node, "status")["ok"]


def test_something_else_at_the_socket_path_is_left_alone(node: Node) -> None:
    node.config.state_dir.mkdir(parents=True)
    node.socket.write_text("not a socket")
    service = AgentService(node.agent())
    with pytest.raises(ControlError, match="is not a socket"):
        service.start()
    assert node.socket.read_text() == "not a socket"


# ----------------------------------------------------------------------------- client


def test_the_client_without_an_agent(short_dir: Path) -> None:
    with pytest.raises(AgentNotRunningError, match="no agent is running"):
        request(short_dir / "agent.sock", "status")
    long_path = short_dir / ("x" * 120) / "agent.sock"
    with pytest.raises(ControlError, match="Unix sockets allow 107"):
        request(long_path, "status")


def test_the_client_gives_up_after_its_timeout(short_dir: Path) -> None:
    path = short_dir / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen()
        started = time.monotonic()
        with pytest.raises(ControlTimeoutError, match=r"did not answer 'status' within 0\.3 s"):
            request(path, "status", timeout=0.3)
        assert time.monotonic() - started < 2


def test_the_feed_hands_out_every_save_in_order(tmp_path: Path) -> None:
    from wellcar.agent.status_store import AgentStatus

    feed = StatusFeed(tmp_path / "status.json")
    seq = feed.seq
    states = [UpdateState.CHECKING_FOR_UPDATE, UpdateState.IDLE]

    def saver() -> None:
        for state in states:
            feed.save(AgentStatus(state=state))

    threading.Thread(target=saver).start()
    deadline = time.monotonic() + 5
    first = feed.wait_for(lambda s: s.state is states[0], after=seq, deadline=deadline)
    assert first is not None
    second = feed.wait_for(lambda s: True, after=first[0], deadline=deadline)
    assert second is not None and second[1].state is UpdateState.IDLE
    assert feed.load().state is UpdateState.IDLE
    assert feed.wait_for(lambda s: True, after=feed.seq, deadline=time.monotonic() + 0.05) is None


# ----------------------------------------------------------------- offline update


def test_an_offline_update_installs_a_signed_payload_file_without_the_server(
    short_dir: Path, payload: SignedPayload, tmp_path: Path
) -> None:
    node = make_node(short_dir, None, payload)  # SERVER=disabled: no server at all
    file = tmp_path / "update.payload"
    file.write_bytes(payload.data)
    with running(node):
        with pytest.raises(ControlCommandError, match="older than the running version"):
            ask(node, "install", payload=str(file), version="0.9.0")
        answer = ask(node, "install", payload=str(file), version=NEW_VERSION)
        assert answer["result"] == "updated-need-reboot", answer
    b = node.backend().slot_table().slot(Slot.B)
    assert b.record.version == NEW_VERSION and b.state.value == "bootable"


def test_an_offline_update_refuses_a_tampered_payload_file(
    short_dir: Path, payload: SignedPayload, tmp_path: Path
) -> None:
    node = make_node(short_dir, None, payload)
    file = tmp_path / "update.payload"
    tampered = bytearray(payload.data)
    tampered[len(tampered) // 2] ^= 0x01
    file.write_bytes(bytes(tampered))
    with running(node):
        answer = ask(node, "install", payload=str(file), version=NEW_VERSION)
        assert answer["result"] == "failed", answer
    assert node.backend().slot_table().slot(Slot.B).state.value != "bootable"
