"""A live system (ISO or PXE boot, no A/B slots): the agent reports the node and installs
nothing. The booted proof is tests/system/test_live_in_vm.py's PXE scenario."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from wellcar.agent.assemble import build_parts
from wellcar.agent.config import AgentConfig, RebootStrategy
from wellcar.agent.daemon import CheckResult, UpdateAgent
from wellcar.agent.live_backend import LiveSystemBackend, NoSlotsError, is_live_system
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.slot_backend import SlotBackendError
from wellcar.agent.state import UpdateState
from wellcar.disk import Slot
from wellcar.live.boot_scripts import LIVE_MARKER
from wellcar.omaha.parse import parse_request

from .test_omaha_client import LoopbackServer, offer, xml

BOOT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def live_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    marker = root / LIVE_MARKER.lstrip("/")
    marker.parent.mkdir(parents=True)
    marker.touch()
    boot_id = root / "proc/sys/kernel/random/boot_id"
    boot_id.parent.mkdir(parents=True)
    boot_id.write_text(BOOT_ID + "\n")
    return root


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def live_agent(root: Path, server: LoopbackServer, tmp_path: Path) -> UpdateAgent:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    config = AgentConfig(
        server=server.url("/v1/update/"),
        default_server=server.url("/v1/update/"),
        version="4893.0.0",
        state_dir=tmp_path / "state",
        payload_key_dir=keys,
        reboot_strategy=RebootStrategy.OFF,
        health_units=(),
        http_timeout=dt.timedelta(seconds=5),
    )
    identity = NodeIdentity(
        version="4893.0.0", board="amd64-usr", machine_id="cd" * 16, boot_id="0" * 32
    )
    parts = build_parts(config, identity, LiveSystemBackend(root), sessions=list,
                        allow_unsigned=True)  # fmt: skip
    return UpdateAgent(parts)


def test_the_live_marker_is_what_makes_a_live_system(live_root: Path, tmp_path: Path) -> None:
    assert is_live_system(live_root)
    assert not is_live_system(tmp_path / "elsewhere")


def test_every_slot_operation_is_refused_with_what_to_do(live_root: Path) -> None:
    backend = LiveSystemBackend(live_root)
    assert backend.boot_id() == BOOT_ID
    backend.reconcile()  # nothing to bring in, and no error
    for operation in (
        backend.slot_table,
        backend.booted_slot,
        backend.payload_image,
        lambda: backend.usr_region(Slot.B),
        lambda: backend.write_boot_entry(Slot.B, version="2", tries=1),
    ):
        with pytest.raises(NoSlotsError, match=r"live system.*wellcar install"):
            operation()
    assert issubclass(NoSlotsError, SlotBackendError)  # the control socket's refusals


def test_a_live_node_reports_itself_and_takes_no_offer(
    live_root: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    # Even a server that would grant an update gets only a ping: nothing is downloaded.
    server.routes["/v1/update/"] = xml(offer(version="4894.0.0"))
    agent = live_agent(live_root, server, tmp_path)
    assert agent.boot() is None  # nothing on trial, nothing assessed
    assert agent.running_version() == "4893.0.0"

    assert agent.check() is CheckResult.NO_UPDATE
    assert len(server.seen) == 1
    _, headers, body = server.seen[0]
    (app,) = parse_request(body, headers.get("Content-Type")).apps
    assert app.ping is not None and app.updatecheck is None and not app.events
    assert app.version == "4893.0.0" and app.bootid == "{" + BOOT_ID + "}"
    status = agent.status()
    assert status.state is UpdateState.IDLE and status.new_version is None
    assert status.has_checked_in and status.last_check_time is not None


def test_a_live_node_that_cannot_reach_its_server_backs_off(
    live_root: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    agent = live_agent(live_root, server, tmp_path)
    agent.boot()
    server.shutdown()
    server.server_close()
    assert agent.check() is CheckResult.CHECK_FAILED
    assert agent.status().consecutive_check_failures == 1


def test_a_payload_file_is_refused_on_a_live_node(
    live_root: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    agent = live_agent(live_root, server, tmp_path)
    agent.boot()
    payload = tmp_path / "update.payload"
    payload.write_bytes(b"not even read")
    with pytest.raises(NoSlotsError):
        agent.install_local(payload, "4894.0.0")
