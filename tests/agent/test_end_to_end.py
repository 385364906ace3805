"""End to end, no VM: `wellcar serve`, 20 agents on disk image files, a rollout, faults.

Everything is real except the machines' bodies: each node is a process running the agent
on its own GPT disk image (FileSlotBackend; a reboot is gptprio picking the slot again), and
its health is "the booted version is not in a list of broken versions". The update server
is `wellcar serve` on SQLite, payloads come from a loopback HTTP server that fails on
purpose at first (connections cut mid-download, corrupt bytes), and one node is killed
with SIGKILL in the middle of its install.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from wellcar.cli.api_client import ApiClient
from wellcar.disk import DiskLayout, Slot, SlotState, SlotTable, create_disk_image
from wellcar.omaha.model import FLATCAR_APP_ID
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import KeyAlgorithm, generate_key, load_signing_key, write_key_pair
from wellcar.payload.slot_install import slot_region
from wellcar.server.api.models import (
    AppCreate,
    ChannelCreate,
    ChannelUpdate,
    FlatcarActionInput,
    GroupCreate,
    PackageCreate,
)
from wellcar.server.fleet_codes import InstanceStatus

from ..payload.helpers import make_new_image, make_old_image
from ..server.server_processes import serve_processes

NODES = 20
MAX_UPDATES = 5
REBOOT_SLOTS = 2
TOKEN = "e2e-admin-token"
LAYOUT = DiskLayout(
    esp_size=1 << 20, usr_size=8 << 20, oem_size=1 << 20, oem_config_size=1 << 20, root_size=1 << 20
)
NODE_SCRIPT = Path(__file__).with_name("node_process.py")

pytestmark = pytest.mark.slow


# --- the payload mirror, with faults ----------------------------------------------------


@dataclass
class Mirror:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_midway: int = 0  # the next N downloads stop after half the bytes
    corrupt: int = 0  # the next N downloads (after the cut ones) carry a flipped byte
    served: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self) -> str:
        with self.lock:
            if self.cut_midway:
                self.cut_midway -= 1
                return "cut"
            if self.corrupt:
                self.corrupt -= 1
                return "corrupt"
            return "ok"


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data = mirror.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
                start = int(ranged[6:-1])
            plan = mirror.plan() if start == 0 else "ok"
            mirror.served.append(plan)
            body = data[start:]
            if plan == "corrupt":
                body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if plan == "cut":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)  # the "server" goes away mid-download
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def mirror() -> Iterator[tuple[Mirror, str]]:
    state = Mirror()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- the fleet --------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    root: Path
    image: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / "var/lib/wellcar"

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(NODE_SCRIPT), str(self.root), str(self.image)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "ab"),  # noqa: SIM115 - lives with the process
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def status(self) -> dict[str, object]:
        try:
            loaded: dict[str, object] = json.loads((self.state_dir / "status.json").read_text())
            return loaded
        except (OSError, ValueError):
            return {}

    def booted(self) -> tuple[Slot | None, str | None, SlotState | None]:
        try:
            node = json.loads((self.state_dir / "node.json").read_text())
            slot = Slot(node["booted_slot"])
            info = SlotTable.for_image(self.image, active=slot).slot(slot)
        except (OSError, ValueError, KeyError):
            return None, None, None
        return slot, info.record.version, info.state


def _write_node(root: Path, image: Path, v1: bytes, server: str, keys: Path) -> Node:
    (root / "etc/wellcar").mkdir(parents=True)
    (root / "usr/share/wellcar").mkdir(parents=True)
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    (root / "proc/sys/kernel/random/boot_id").write_text(str(uuid.uuid4()) + "\n")
    (root / "usr/share/wellcar/release").write_text("WELLCAR_RELEASE_VERSION=1.0.0\n")
    (root / "etc/wellcar/update.conf").write_text(
        f"SERVER={server}/v1/update/\nGROUP=stable\nREBOOT_STRATEGY=fleet-lock\n"
        f"FLEETLOCK_URL={server}\nCHECK_INITIAL_DELAY=0.2\nCHECK_INTERVAL=1\nCHECK_FUZZ=0.3\n"
        "MAX_BACKOFF=3\nHEALTH_UNITS=\nHEALTH_COMMAND=/bin/true\nBOOT_ASSESSMENT_GRACE=0\n"
        "STATE_DIR=/var/lib/wellcar\n"
    )
    # The release key ships in /usr, where the agent looks by default.
    shipped = root / "usr/share/wellcar/update-payload-keys"
    shipped.mkdir()
    for key in keys.iterdir():
        (shipped / key.name).write_bytes(key.read_bytes())
    create_disk_image(image, LAYOUT, seed=hash(root.name) & 0xFFFF)
    region = slot_region(SlotTable.for_image(image), image, Slot.A)
    with open(image, "r+b") as disk:
        disk.seek(region.offset)
        disk.write(v1)
    return Node(root.name, root, image)


def _publish(api: ApiClient, app: str, channel: str, mirror_url: str, version: str,
             payload: bytes, mirror: Mirror) -> None:  # fmt: skip
    mirror.files[f"/{version}/wellcar_update.payload"] = payload
    package = api.create_package(
        app,
        PackageCreate(
            type=1,
            version=version,
            arch=1,
            url=f"{mirror_url}/{version}/",
            filename="wellcar_update.payload",
            size=str(len(payload)),
            hash=base64.b64encode(hashlib.sha1(payload).digest()).decode(),
            flatcar_action=FlatcarActionInput(
                sha256=base64.b64encode(hashlib.sha256(payload).digest()).decode()
            ),
            channels_blacklist=[],
        ),
    )
    api.update_channel(app, channel, ChannelUpdate(package_id=package.id))


@dataclass
class Watch:
    max_busy: int = 0
    max_holders: int = 0
    seen_holders: bool = False


BUSY = {"UPDATE_STATUS_UPDATE_AVAILABLE", "UPDATE_STATUS_DOWNLOADING", "UPDATE_STATUS_VERIFYING",
        "UPDATE_STATUS_FINALIZING", "UPDATE_STATUS_UPDATED_NEED_REBOOT"}  # fmt: skip


def _wait_for(
    nodes: list[Node], done: object, watch: Watch, server: str, timeout: float,
    on_tick: object = None,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.monotonic() < deadline:
        states = [str(n.status().get("state", "")) for n in nodes]
        watch.max_busy = max(watch.max_busy, sum(s in BUSY for s in states))
        groups = httpx.get(f"{server}/api/fleetlock/groups", headers=headers, timeout=5).json()
        holders = sum(len(g.get("holders", [])) for g in groups.get("groups", groups) or [])
        watch.max_holders = max(watch.max_holders, holders)
        watch.seen_holders |= holders > 0
        if callable(on_tick):
            on_tick()
        if callable(done) and all(done(n) for n in nodes):
            return
        for node in nodes:
            assert node.process is not None
            if node.process.poll() is not None and node.process.returncode != 0:
                log = (node.root / "stderr.log").read_text()[-3000:]
                raise AssertionError(f"{node.name} crashed: {log}")
        time.sleep(0.2)
    report = {n.name: (n.booted(), n.status().get("state")) for n in nodes}
    raise AssertionError(f"the fleet did not get there in {timeout} s: {report}")


def test_a_fleet_rolls_forward_and_falls_back(tmp_path: Path, mirror: tuple[Mirror, str]) -> None:
    mirror_state, mirror_url = mirror
    keys = tmp_path / "keys"
    keys.mkdir()
    write_key_pair(generate_key(KeyAlgorithm.ED25519), tmp_path / "release.key", keys / "r.pub")
    signing = [load_signing_key(tmp_path / "release.key")]

    v1 = make_old_image(1024, seed=21)  # 4 MiB /usr images
    v2 = make_new_image(v1, seed=22)
    v3 = make_new_image(v2, seed=23)
    for name, data in (("v1", v1), ("v2", v2), ("v3", v3)):
        (tmp_path / f"{name}.img").write_bytes(data)
    fast = GenerateOptions(zstd_level=3)
    generate_payload(PayloadInputs(tmp_path / "v2.img"), tmp_path / "v2.payload", signing, fast)
    generate_payload(
        PayloadInputs(tmp_path / "v3.img", tmp_path / "v2.img"), tmp_path / "v3.payload",
        signing, fast,
    )  # fmt: skip

    env = {**os.environ, "WELLCAR_ADMIN_TOKEN": TOKEN, "WELLCAR_READ_TOKEN": TOKEN}
    with serve_processes(tmp_path / "server", 1, extra_env=env) as (server,):
        api = ApiClient(server, TOKEN)
        app = api.create_app(AppCreate(id=FLATCAR_APP_ID, name="fleet", description="e2e")).id
        channel = api.create_channel(app, ChannelCreate(name="stable", color="#000", arch=1)).id
        api.create_group(
            app,
            GroupCreate(
                name="Stable", track="stable", channel_id=channel, description="e2e",
                policy_updates_enabled=True, policy_safe_mode=False, policy_office_hours=False,
                policy_timezone="UTC", policy_period_interval="2 seconds",
                policy_max_updates_per_period=MAX_UPDATES, policy_update_timeout="5 minutes",
            ),
        )  # fmt: skip
        put = httpx.put(
            f"{server}/api/fleetlock/groups/default",
            json={"slots": REBOOT_SLOTS},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert put.status_code == 200, put.text

        nodes = [
            _write_node(tmp_path / f"node{i:02d}", tmp_path / f"node{i:02d}.img", v1, server, keys)
            for i in range(NODES)
        ]
        node_env = {**os.environ, "WELLCAR_TEST_BROKEN_VERSIONS": "3.0.0"}
        try:
            victim = nodes[-1]
            for node in nodes:
                slow = {"WELLCAR_TEST_SLOW_DISK": "0.3"} if node is victim else {}
                node.start({**node_env, **slow})
            # Faults for the first downloads: two cut off mid-way, then two corrupt.
            mirror_state.cut_midway, mirror_state.corrupt = 2, 2
            _publish(api, app, channel, mirror_url, "2.0.0", (tmp_path / "v2.payload").read_bytes(),
                     mirror_state)  # fmt: skip

            killed: list[bool] = []

            def kill_during_install() -> None:
                # Power loss while the victim downloads or writes its slot.
                state = victim.status().get("state")
                if not killed and state == "UPDATE_STATUS_FINALIZING":
                    victim.kill()
                    killed.append(True)
                    victim.start(node_env)

            def on_v2(node: Node) -> bool:
                _, version, state = node.booted()
                status = node.status()
                reported = status.get("current_version") == "2.0.0" and (
                    status.get("previous_version") is None  # 3/2 delivered
                )
                return version == "2.0.0" and state is SlotState.GOOD and reported

            watch = Watch()
            _wait_for(nodes, on_v2, watch, server, 240, kill_during_install)
            assert killed, "the victim was never caught installing"
            assert watch.max_busy <= MAX_UPDATES
            assert 1 <= watch.max_holders <= REBOOT_SLOTS
            assert "cut" in mirror_state.served and "corrupt" in mirror_state.served
            for node in nodes:
                assert node.booted()[0] is Slot.B

            # The server saw every node complete on 2.0.0, and the corrupt downloads fail.
            group = api.find_group(app, "stable").id
            page = api.list_instances(app, group, perpage=100)
            assert page.total == NODES
            apps = [i.application for i in page.instances if i.application is not None]
            assert {a.version for a in apps} == {"2.0.0"}
            assert {a.status for a in apps} == {InstanceStatus.COMPLETE}
            failures = api.list_activity(app=app, severity=4, perpage=100).activities
            assert any(a.version == "2.0.0" for a in failures)  # the corrupt downloads

            # 3.0.0 boots but fails its health check: every node falls back to 2.0.0 by
            # itself and reports errorcode 44.
            _publish(api, app, channel, mirror_url, "3.0.0", (tmp_path / "v3.payload").read_bytes(),
                     mirror_state)  # fmt: skip

            def back_on_v2(node: Node) -> bool:
                slot, version, _ = node.booted()
                return (
                    slot is Slot.B
                    and version == "2.0.0"
                    and node.status().get("rolled_back_version") == "3.0.0"
                    and node.status().get("previous_version") is None
                )

            _wait_for(nodes, back_on_v2, Watch(), server, 240)
            for node in nodes:
                table = SlotTable.for_image(node.image, active=Slot.B)
                assert table.slot(Slot.B).state is SlotState.GOOD
                assert table.slot(Slot.A).state is SlotState.BAD
            # The server saw each node fail 3.0.0 (the 3/0 errorcode 44 after the rollback,
            # repeated whenever the node declines the version again).
            # A node marks the rollback on disk at boot and reports it at its next check, so
            # the server may hear of the last one a few seconds after the wait above.
            page = api.list_instances(app, group, perpage=100)
            everyone = {i.id for i in page.instances}
            deadline = time.monotonic() + 60
            while True:
                failed = {
                    a.instance_id
                    for a in api.list_activity(app=app, severity=4, perpage=500).activities
                    if a.version == "3.0.0"
                }
                if failed == everyone or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert failed == everyone
            assert {i.application.version for i in page.instances if i.application} == {"2.0.0"}
        finally:
            for node in nodes:
                node.stop()
