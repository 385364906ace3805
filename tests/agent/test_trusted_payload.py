"""TUF in the update loop: the real agent, a file-backed node, a TUF release repository.

The node trusts the root its image ships (the simulator's ``shipped_root``); the payload
comes from a separate loopback mirror, as Omaha names it. An update installs only when
the release keys signed it for this board, with the offered length and hash, no older
than the running version, under metadata that has not expired; anything else ends in an
error event and a target slot that cannot boot.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wellcar.agent.config import AgentConfig
from wellcar.agent.daemon import CheckResult
from wellcar.agent.errors import ConfigError, TrustMetadataError, UntrustedPayloadError
from wellcar.agent.omaha_client import UpdateOffer
from wellcar.agent.state import UpdateState
from wellcar.agent.trusted_payload import TrustGate
from wellcar.disk import Slot, SlotState, SlotTable

from ..payload.helpers import loopback_http
from ..trust.simulator import RepoSim
from . import test_daemon
from .test_daemon import Node, Payloads, errors_reported, offer_of, target_is_unbootable

# The daemon tests' node (a disk image with 1.0.0 in slot A, a loopback Omaha server) and
# payloads, shared rather than rebuilt.
node = test_daemon.node
payloads = test_daemon.payloads


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RepoSim]:
    simulator = RepoSim(tmp_path / "release")
    try:
        yield simulator
    finally:
        simulator.close()


def trusting(node: Node, sim: RepoSim, **changes: object) -> Node:
    """The node with the simulator's root shipped in its image and its repository set."""
    node.config = replace(
        node.config, trust_root=sim.shipped_root, release_repository=sim.url, **changes
    )
    return node


def offer_update(node: Node, data: bytes, url: str, version: str = "2.0.0") -> None:
    node.omaha.routes["/v1/update/"] = offer_of(data, url, version)  # type: ignore[assignment]


def events(node: Node) -> list[tuple[int, int]]:
    return [(kind, result) for kind, result, _, _ in node.events()]


def test_a_signed_update_installs(node: Node, sim: RepoSim, payloads: Payloads) -> None:
    sim.release("2.0.0", content=payloads.good)
    trusting(node, sim)
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.UPDATED
    assert agent.status().state is UpdateState.UPDATED_NEED_REBOOT
    assert events(node)[-3:] == [(13, 1), (14, 1), (3, 1)]
    b = SlotTable.for_image(node.image, active=Slot.A).slot(Slot.B)
    assert (b.state, b.record.version) == (SlotState.BOOTABLE, "2.0.0")
    # The metadata it trusted now is kept: a later rollback of it is detectable.
    assert (node.config.trust_dir / "timestamp.json").is_file()
    assert any(path.startswith("metadata/") for path in sim.server.requests)


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("not a target", 12, "no signed update payload of version 2.0.0"),
        ("other board", 12, "for board amd64-usr"),
        ("other hash", 10, "is not the signed"),
        ("other length", 11, "the release keys signed"),
        ("older version", 12, r"older than the running 1\.5\.0"),
    ],
)
def test_an_offer_tuf_does_not_vouch_for_is_never_downloaded(
    node: Node, sim: RepoSim, payloads: Payloads, case: str, code: int, message: str
) -> None:
    good = payloads.good
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    version = "2.0.0"
    if case == "not a target":
        sim.release("1.0.0", content=good)  # signed, but not the offered release
    elif case == "other board":
        sim.release(version, content=good, board="arm64-usr")
    elif case == "other hash":
        sim.release(version, content=bytes(flipped))  # same length, other bytes
    elif case == "other length":
        sim.release(version, content=good + b"\0")
    else:
        # Omaha thinks the node runs 1.0.0 (its slot) and offers 1.2.0; the release file
        # says 1.5.0, and TUF refuses to go back from it.
        version = "1.2.0"
        sim.release(version, content=good)
    trusting(node, sim, version="1.5.0" if case == "older version" else "1.0.0")
    with loopback_http({"p": good}) as mirror:
        offer_update(node, good, mirror.url_of("p"), version)
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED, case
        assert mirror.requests == []  # refused before a byte of the payload was fetched
    status = agent.status()
    assert status.state is UpdateState.IDLE
    assert status.last_error_message is not None
    assert not list(node.config.download_dir.glob("*"))
    assert re.search(message, status.last_error_message), status.last_error_message
    assert errors_reported(node) == [code]
    assert (13, 1) not in events(node)
    assert target_is_unbootable(node)


def test_a_download_that_is_not_the_signed_target_is_deleted(
    node: Node, sim: RepoSim, payloads: Payloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.release("2.0.0", content=payloads.good)
    trusting(node, sim)
    verify = TrustGate.verify_download

    def tampered_on_disk(self: TrustGate, admission: object, path: Path) -> None:
        # The Omaha hash matched during the download; the bytes changed afterwards (a bad
        # disk, or someone writing into the state directory).
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        verify(self, admission, path)  # type: ignore[arg-type]

    monkeypatch.setattr(TrustGate, "verify_download", tampered_on_disk)
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
    assert "corrupt or tampered" in (agent.status().last_error_message or "")
    assert errors_reported(node) == [10]  # PAYLOAD_HASH_MISMATCH
    assert not list(node.config.download_dir.glob("*.payload"))
    assert target_is_unbootable(node)


def test_expired_metadata_installs_nothing_and_the_next_check_retries(
    node: Node, sim: RepoSim, payloads: Payloads
) -> None:
    # The repository's online signing stopped two days ago (timestamps live one day).
    sim.advance(-2 * 86400)
    sim.release("2.0.0", content=payloads.good)
    trusting(node, sim)
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
        status = agent.status()
        assert status.state is UpdateState.IDLE
        assert "stale metadata" in (status.last_error_message or "")
        assert errors_reported(node) == [9]  # DOWNLOAD_TRANSFER_ERROR: transient
        assert mirror.requests == []
        assert target_is_unbootable(node)

        # Signing resumes; the next scheduled check installs.
        sim.now = datetime.now(UTC).replace(microsecond=0)
        sim.repo.refresh_online(sim.keyring("snapshot", "timestamp"), now=sim.now)
        assert agent.check() is CheckResult.UPDATED
    b = SlotTable.for_image(node.image, active=Slot.A).slot(Slot.B)
    assert (b.state, b.record.version) == (SlotState.BOOTABLE, "2.0.0")


def test_an_unreachable_repository_installs_nothing(
    node: Node, sim: RepoSim, payloads: Payloads
) -> None:
    trusting(node, sim)
    node.config = replace(node.config, release_repository="http://127.0.0.1:9/release")
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
        assert mirror.requests == []
    assert "check the mirror URL and network" in (agent.status().last_error_message or "")
    assert errors_reported(node) == [9]
    assert target_is_unbootable(node)


def test_without_a_shipped_root_payload_signatures_alone_decide(
    node: Node, payloads: Payloads, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A repository is named (and unreachable), but the image ships no root: TUF is off.
    node.config = replace(
        node.config,
        trust_root=tmp_path / "absent" / "root.json",
        release_repository="http://127.0.0.1:9/release",
    )
    with (
        caplog.at_level(logging.INFO, logger="wellcar.agent"),
        loopback_http({"p": payloads.good}) as mirror,
    ):
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.UPDATED
        TrustGate.from_config(node.config).log_mode()  # what the runner logs at start
    off = [
        r
        for r in caplog.records
        if r.getMessage()
        == "trust off: no TUF root shipped, payloads are checked by their signature only"
    ]
    assert len(off) == 1
    assert not node.config.trust_dir.exists()


def test_a_shipped_root_without_a_repository_refuses_every_update(
    node: Node, sim: RepoSim, payloads: Payloads, caplog: pytest.LogCaptureFixture
) -> None:
    sim.release("2.0.0", content=payloads.good)
    trusting(node, sim)
    node.config = replace(node.config, release_repository=None)
    with (
        caplog.at_level(logging.INFO, logger="wellcar.agent"),
        loopback_http({"p": payloads.good}) as mirror,
    ):
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
        assert mirror.requests == []
    message = agent.status().last_error_message or ""
    assert "RELEASE_REPOSITORY is not set" in message
    assert "no update is installed without verified release metadata" in message
    assert errors_reported(node) == [1]
    assert target_is_unbootable(node)
    TrustGate.from_config(node.config).log_mode()
    assert any(r.getMessage().startswith("trust misconfigured") for r in caplog.records)


# --- the gate alone ------------------------------------------------------------------------


def gate_for(config: AgentConfig) -> TrustGate:
    return TrustGate.from_config(config)


def offer_for(data: bytes, version: str = "2.0.0") -> UpdateOffer:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return UpdateOffer(version, ("http://127.0.0.1:9/p",), len(data), digest, "p")


def test_gate_errors_carry_agent_codes(sim: RepoSim, tmp_path: Path) -> None:
    data = b"payload 2.0.0"
    sim.release("2.0.0", content=data)
    config = AgentConfig(
        state_dir=tmp_path / "state",
        version="1.0.0",
        trust_root=sim.shipped_root,
        release_repository=sim.url,
    )
    gate = gate_for(config)
    assert gate.required
    admission = gate.admit_offer(offer_for(data))
    assert admission.target is not None and admission.target.length == len(data)
    good = tmp_path / "good"
    good.write_bytes(data)
    gate.verify_download(admission, good)
    bad = tmp_path / "bad"
    bad.write_bytes(b"payload 2.0.1")
    with pytest.raises(UntrustedPayloadError) as refused:
        gate.verify_download(admission, bad)
    assert refused.value.error_code == 10
    with pytest.raises(UntrustedPayloadError) as unknown:
        gate.admit_offer(offer_for(data, "3.0.0"))
    assert unknown.value.error_code == 12
    # An admission made without TUF never passes a gate that requires it.
    with pytest.raises(UntrustedPayloadError, match="not admitted by TUF"):
        gate.verify_download(type(admission)("2.0.0"), good)

    broken = gate_for(replace(config, release_repository="http://127.0.0.1:9/"))
    with pytest.raises(TrustMetadataError) as unreachable:
        broken.admit_offer(offer_for(data))
    assert unreachable.value.error_code == 9
    with pytest.raises(ConfigError, match="RELEASE_REPOSITORY"):
        gate_for(replace(config, release_repository=None)).admit_offer(offer_for(data))


def test_an_agent_without_a_root_does_not_load_tuf(tmp_path: Path) -> None:
    # Idle memory matters on a node (bench/agent.py): python-tuf stays out unless needed.
    code = f"""
import sys
from pathlib import Path
from wellcar.agent.config import AgentConfig
from wellcar.agent.daemon import UpdateAgent
from wellcar.agent.trusted_payload import TrustGate
from wellcar.agent.omaha_client import UpdateOffer
gate = TrustGate.from_config(AgentConfig(trust_root=Path({str(tmp_path / "none.json")!r})))
admission = gate.admit_offer(UpdateOffer("2.0.0", ("http://x/p",), 1, "", "p"))
gate.verify_download(admission, Path("/nonexistent"))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tuf", "securesystemslib"))
loaded += [m for m in sys.modules if m == "wellcar.trust.client"]
print(",".join(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------- channels

NEBRASKA_GROUP = "9a2deb70-37be-4026-853f-bfdd6b347bbe"  # a custom group: names no channel


@pytest.mark.parametrize("group", ["stable", NEBRASKA_GROUP])
def test_a_signed_build_of_another_channel_is_refused(
    node: Node, sim: RepoSim, payloads: Payloads, group: str
) -> None:
    # The update server (whoever controls it) offers a stable node a correctly signed,
    # newer edge build: the node follows stable (its GROUP, or the release it runs).
    sim.release("1.0.0", channel="stable")
    sim.release("2.0.0", channel="edge", content=payloads.good)
    trusting(node, sim, group=group)
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
        assert mirror.requests == []
    message = agent.status().last_error_message or ""
    assert "is signed for channel edge, this node follows channel stable" in message
    assert "set CHANNEL=edge in update.conf" in message
    assert errors_reported(node) == [12]
    assert target_is_unbootable(node)


@pytest.mark.parametrize(
    ("changes", "source"),
    [({"channel": "edge"}, "CHANNEL= in update.conf"), ({"group": "edge"}, "GROUP=")],
)
def test_the_operator_can_switch_channels_and_it_is_logged(
    node: Node, sim: RepoSim, payloads: Payloads, caplog: pytest.LogCaptureFixture,
    changes: dict[str, str], source: str,
) -> None:  # fmt: skip
    sim.release("1.0.0", channel="stable")
    sim.release("2.0.0", channel="edge", content=payloads.good)
    trusting(node, sim, **changes)
    with (
        caplog.at_level(logging.WARNING, logger="wellcar.agent"),
        loopback_http({"p": payloads.good}) as mirror,
    ):
        offer_update(node, payloads.good, mirror.url_of("p"))
        assert node.agent().check() is CheckResult.UPDATED
    switched = [r for r in caplog.records if r.getMessage() == "channel switched by the operator"]
    assert len(switched) == 1
    reason = switched[0].__dict__["wellcar_fields"]["reason"]
    assert reason.startswith("channel edge (from " + source) and "switched from stable" in reason


def test_a_node_whose_channel_nothing_names_refuses_and_says_how_to_fix_it(
    node: Node, sim: RepoSim, payloads: Payloads
) -> None:
    sim.release("2.0.0", channel="edge", content=payloads.good)  # 1.0.0 was never released
    trusting(node, sim, group=NEBRASKA_GROUP)
    with loopback_http({"p": payloads.good}) as mirror:
        offer_update(node, payloads.good, mirror.url_of("p"))
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
        assert mirror.requests == []
    assert "set CHANNEL=<name> in update.conf" in (agent.status().last_error_message or "")
