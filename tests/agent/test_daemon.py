"""The update loop on one node: a disk image, a loopback Omaha server, a loopback mirror.

Bad input must end in an error event, a backoff and nothing bootable; a good update must
end in UPDATED_NEED_REBOOT with the new slot on trial, and 3/2 after the reboot.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from wellcar.agent.assemble import build_parts
from wellcar.agent.config import AgentConfig, RebootStrategy
from wellcar.agent.daemon import CheckResult, UpdateAgent
from wellcar.agent.health import CommandResult
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.agent.state import UpdateState
from wellcar.disk import (
    DiskLayout,
    GptPrio,
    Slot,
    SlotState,
    SlotTable,
    UsrVerity,
    create_disk_image,
)
from wellcar.omaha.codes import split_error_code
from wellcar.omaha.parse import parse_request
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import KeyAlgorithm, generate_key, load_signing_key, write_key_pair
from wellcar.payload.slot_install import slot_region

from ..payload.helpers import loopback_http, make_new_image, make_old_image
from .test_omaha_client import LoopbackServer, noupdate, offer, raw, xml

LAYOUT = DiskLayout(
    esp_size=1 << 20, usr_size=8 << 20, oem_size=1 << 20, oem_config_size=1 << 20, root_size=1 << 20
)
# The new image is 1032 blocks; pretend its last 8 are the hash tree.
VERITY = UsrVerity("5e" * 32, 1024 * 4096)


@dataclass(frozen=True)
class EntryWrite:
    slot: Slot
    version: str
    tries: int
    verity: UsrVerity | None


class RecordingBackend(FileSlotBackend):
    """A file node that remembers the boot entries the agent asked for."""

    def __init__(self, image: Path, state_dir: Path) -> None:
        super().__init__(image, state_dir)
        self.entries: list[EntryWrite] = []

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        self.entries.append(EntryWrite(slot, version, tries, verity))


class AllHealthy:
    def unit_state(self, unit: str) -> str:
        return "active"

    def run(self, command: object, timeout: float) -> CommandResult:
        return CommandResult(exit_code=0)


@dataclass
class Node:
    root: Path
    image: Path
    backend: RecordingBackend
    config: AgentConfig
    omaha: LoopbackServer

    def agent(self) -> UpdateAgent:
        identity = NodeIdentity(
            version="1.0.0", board="amd64-usr", machine_id="ab" * 16, boot_id="0" * 32
        )
        parts = build_parts(self.config, identity, self.backend, runner=AllHealthy(), sessions=list)
        agent = UpdateAgent(parts)
        agent.boot()
        return agent

    def events(self) -> list[tuple[int, int, int | None, str | None]]:
        out = []
        for _, headers, body in self.omaha.seen:
            for app in parse_request(body, headers.get("Content-Type")).apps:
                out += [
                    (e.eventtype, e.eventresult, e.errorcode, e.previousversion) for e in app.events
                ]
        return out


@dataclass
class Payloads:
    good: bytes  # signed by the release key the node trusts
    other_key: bytes  # the same /usr, signed by a key the node does not trust
    release_pub: bytes
    verity: bytes  # like good, with VERITY in its manifest


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> Payloads:
    work = tmp_path_factory.mktemp("payloads")
    (work / "new.img").write_bytes(make_new_image(make_old_image(1024, seed=5), seed=6))
    out = {}
    for name in ("release", "stranger"):
        write_key_pair(
            generate_key(KeyAlgorithm.ED25519), work / f"{name}.key", work / f"{name}.pub"
        )
        generate_payload(
            PayloadInputs(work / "new.img"), work / f"{name}.payload",
            [load_signing_key(work / f"{name}.key")], GenerateOptions(zstd_level=3),
        )  # fmt: skip
        out[name] = (work / f"{name}.payload").read_bytes()
    generate_payload(
        PayloadInputs(work / "new.img", usr_verity=VERITY), work / "verity.payload",
        [load_signing_key(work / "release.key")], GenerateOptions(zstd_level=3),
    )  # fmt: skip
    return Payloads(
        out["release"],
        out["stranger"],
        (work / "release.pub").read_bytes(),
        (work / "verity.payload").read_bytes(),
    )


@pytest.fixture
def node(tmp_path: Path, payloads: Payloads) -> Iterator[Node]:
    image = tmp_path / "disk.img"
    create_disk_image(image, LAYOUT, seed=9)
    region = slot_region(SlotTable.for_image(image), image, Slot.A)
    with open(image, "r+b") as disk:
        disk.seek(region.offset)
        disk.write(make_old_image(1024, seed=5))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "release.pub").write_bytes(payloads.release_pub)
    server = LoopbackServer()
    server.start()
    state = tmp_path / "state"
    backend = RecordingBackend(image, state)
    backend.power_on()
    config = AgentConfig(
        server=server.url("/v1/update/"),
        default_server=server.url("/v1/update/"),
        version="1.0.0",
        state_dir=state,
        payload_key_dir=keys,
        reboot_strategy=RebootStrategy.OFF,
        health_units=(),
        http_timeout=dt.timedelta(seconds=5),
    )
    yield Node(tmp_path, image, backend, config, server)
    server.shutdown()
    server.server_close()


def offer_of(data: bytes, url: str, version: str = "2.0.0", sha256: bytes | None = None) -> object:
    return xml(
        offer(
            version=version,
            urls=(url.rsplit("/", 1)[0] + "/",),
            name=url.rsplit("/", 1)[1],
            size=len(data),
            sha256=base64.b64encode(sha256 or hashlib.sha256(data).digest()).decode(),
        )
    )


def errors_reported(node: Node) -> list[int]:
    return [
        split_error_code(code).code
        for kind, result, code, _ in node.events()
        if (kind, result) == (3, 0) and code is not None
    ]


def target_is_unbootable(node: Node) -> bool:
    info = SlotTable.for_image(node.image, active=Slot.A).slot(Slot.B)
    return info.prio == GptPrio(0, 0, False) and info.state is not SlotState.VERIFIED


def test_a_good_update_waits_for_its_reboot_then_reports_3_2(
    node: Node, payloads: Payloads
) -> None:
    with loopback_http({"p": payloads.good}) as mirror:
        node.omaha.routes["/v1/update/"] = offer_of(payloads.good, mirror.url_of("p"))  # type: ignore[assignment]
        agent = node.agent()
        assert agent.check() is CheckResult.UPDATED
    assert agent.status().state is UpdateState.UPDATED_NEED_REBOOT
    events = [(k, r) for k, r, _, _ in node.events()]
    assert events[-3:] == [(13, 1), (14, 1), (3, 1)]
    b = SlotTable.for_image(node.image, active=Slot.A).slot(Slot.B)
    assert (b.state, b.prio.tries, b.record.version) == (SlotState.BOOTABLE, 1, "2.0.0")
    assert node.backend.entries == [EntryWrite(Slot.B, "2.0.0", 1, None)]  # no verity: plain

    node.backend.power_on()  # the reboot (strategy off: someone else reboots)
    node.omaha.routes["/v1/update/"] = xml(noupdate())  # type: ignore[assignment]
    agent = node.agent()
    assert agent.report is not None and agent.running_version() == "2.0.0"
    assert agent.check() is CheckResult.NO_UPDATE
    kind, result, _, previous = node.events()[-1]
    assert (kind, result, previous) == (3, 2, "1.0.0")
    assert SlotTable.for_image(node.image, active=Slot.B).slot(Slot.B).state is SlotState.GOOD


def test_the_boot_entry_boots_the_payloads_usr_through_verity(
    node: Node, payloads: Payloads
) -> None:
    with loopback_http({"p": payloads.verity}) as mirror:
        node.omaha.routes["/v1/update/"] = offer_of(payloads.verity, mirror.url_of("p"))  # type: ignore[assignment]
        agent = node.agent()
        assert agent.check() is CheckResult.UPDATED
    assert node.backend.entries == [EntryWrite(Slot.B, "2.0.0", 1, VERITY)]


def test_a_corrupt_download_is_reported_and_nothing_is_installed(
    node: Node, payloads: Payloads
) -> None:
    corrupt = bytearray(payloads.good)
    corrupt[len(corrupt) // 2] ^= 0x01
    with loopback_http({"p": bytes(corrupt)}) as mirror:
        node.omaha.routes["/v1/update/"] = offer_of(  # type: ignore[assignment]
            bytes(corrupt), mirror.url_of("p"), sha256=hashlib.sha256(payloads.good).digest()
        )
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
    status = agent.status()
    assert status.state is UpdateState.IDLE
    assert "SHA-256" in (status.last_error_message or "")
    assert errors_reported(node) == [10]  # PAYLOAD_HASH_MISMATCH
    assert target_is_unbootable(node)
    assert not list(node.config.download_dir.glob("*.payload"))


def test_a_payload_signed_by_an_untrusted_key_never_becomes_bootable(
    node: Node, payloads: Payloads
) -> None:
    with loopback_http({"p": payloads.other_key}) as mirror:
        node.omaha.routes["/v1/update/"] = offer_of(payloads.other_key, mirror.url_of("p"))  # type: ignore[assignment]
        agent = node.agent()
        assert agent.check() is CheckResult.FAILED
    assert errors_reported(node) == [18]  # SIGNATURE_VERIFICATION_FAILED
    assert target_is_unbootable(node)
    assert agent.status().previous_version is None


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (raw(b"<html>not omaha</html>"), "garbage"),
        (raw(b"<response protocol='3.0'>" + b"<x/>" * 400_000 + b"</response>"), "huge"),
        (xml(offer(version="0.9.0")), "older version"),
    ],
)
def test_hostile_answers_are_reported_and_backed_off(node: Node, answer: object, what: str) -> None:
    node.omaha.routes["/v1/update/"] = answer  # type: ignore[assignment]
    agent = node.agent()
    assert agent.check() is CheckResult.CHECK_FAILED, what
    status = agent.status()
    assert status.state is UpdateState.IDLE
    assert status.last_error_code is not None
    assert errors_reported(node) == [34]  # OMAHA_RESPONSE_HANDLER_ERROR / invalid response
    assert target_is_unbootable(node) or SlotTable.for_image(node.image).slot(Slot.B).state is (
        SlotState.EMPTY
    )


def test_an_unreachable_server_backs_off(node: Node) -> None:
    node.omaha.shutdown()
    node.omaha.server_close()
    agent = node.agent()
    delays = []
    for expected_failures in (1, 2, 3):
        assert agent.check() is CheckResult.CHECK_FAILED
        status = agent.status()
        assert status.consecutive_check_failures == expected_failures
        delays.append(agent.schedule.base_interval(consecutive_failures=expected_failures))
    assert delays[0] < delays[1] < delays[2]
    assert SlotTable.for_image(node.image).slot(Slot.B).state is SlotState.EMPTY


def test_updates_disabled(node: Node) -> None:
    node.config = replace(node.config, server=None)
    agent = node.agent()
    assert agent.check() is CheckResult.DISABLED
    assert node.omaha.seen == []
