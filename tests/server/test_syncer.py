"""The syncer against a real upstream `wellcar serve` on loopback: floors and target
registered, the channel moved, payloads hosted after their SHA-256 was checked; garbage
and a tampered payload leave the channels as they were."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from wellcar.omaha import FLATCAR_APP_ID, Manifest, UpdateCheckResponse
from wellcar.omaha import Package as OmahaPackage
from wellcar.server.api.app import create_app
from wellcar.server.api.asgi import app_from_env, settings_to_env
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.settings import ServerSettings
from wellcar.server.syncer import (
    Syncer,
    SyncError,
    SyncSettings,
    extra_file_check,
    hosted_file_name,
    package_url,
)

from .conftest import ADMIN_TOKEN, READ_TOKEN, FakeClock
from .fleet_seed import Seed
from .omaha_client import Node, post
from .server_processes import serve_processes

FLATCAR = canonical_uuid(FLATCAR_APP_ID)
assert FLATCAR is not None
FLOOR, TARGET = "4400.2.0", "4459.2.2"
PAYLOADS = {v: f"payload of {v}\n".encode() * 1000 for v in (FLOOR, TARGET)}
OEM = b"an OEM extension payload\n" * 100  # an extra file of TARGET


class Files:
    """A tiny HTTP file server on loopback (the upstream's payload host)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = served.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def do_POST(self) -> None:  # a "server" that answers garbage to Omaha
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b"\x00<not omaha"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Upstream:
    url: str  # its Omaha endpoint
    files: Files


def _ok(resp: httpx.Response) -> Any:
    assert resp.is_success, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A real `wellcar serve`: stable at TARGET with FLOOR as a floor, for amd64."""
    files = Files({f"/{v}/update.gz": data for v, data in PAYLOADS.items()})
    files.files[f"/{TARGET}/oem-azure.gz"] = OEM
    env = {"WELLCAR_ADMIN_TOKEN": ADMIN_TOKEN, "WELLCAR_READ_TOKEN": READ_TOKEN}
    data_dir = tmp_path_factory.mktemp("upstream")
    try:
        with serve_processes(data_dir, 1, extra_env=env) as (url,):
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            app = _ok(api.post("/api/apps", json={"id": FLATCAR_APP_ID, "name": "Flatcar"}))["id"]
            ids = {}
            for version, data in PAYLOADS.items():
                body = {
                    "version": version, "url": f"{files.url}/{version}/", "filename": "update.gz",
                    "size": str(len(data)),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
                    "flatcar_action": {
                        "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()
                    },
                }  # fmt: skip
                if version == TARGET:
                    oem = {"name": "oem-azure.gz", "size": str(len(OEM)),
                           "hash256": hashlib.sha256(OEM).hexdigest()}  # fmt: skip
                    body["extra_files"] = [oem]
                ids[version] = _ok(api.post(f"/api/apps/{app}/packages", json=body))["id"]
            stable = {"name": "stable", "package_id": ids[TARGET]}
            channel = _ok(api.post(f"/api/apps/{app}/channels", json=stable))["id"]
            _ok(api.put(f"/api/apps/{app}/channels/{channel}/floors/{ids[FLOOR]}",
                        json={"floor_reason": "filesystem migration"}))  # fmt: skip
            _ok(api.post(f"/api/apps/{app}/groups", json={
                "name": "Stable", "channel_id": channel, "track": "stable",
                "policy_updates_enabled": True, "policy_safe_mode": False,
                "policy_max_updates_per_period": 100000}))  # fmt: skip
            yield Upstream(f"{url}/v1/update/", files)
    finally:
        files.close()


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


@pytest.fixture
def downstream(client: TestClient) -> dict[str, str]:
    """Our server: the Flatcar app with empty stable and beta channels, a stable group."""
    seed = Seed(engine_of(client))
    app = seed.app(FLATCAR, "Flatcar")
    stable = seed.channel(app, "stable", None)
    beta = seed.channel(app, "beta", None)
    seed.channel(app, "my-own", None)  # not an upstream channel name: never synced
    seed.group(app, stable, "stable")
    return {"app": app, "stable": stable, "beta": beta}


def channel_version(client: TestClient, app: str, channel: str) -> str | None:
    package = _ok(client.get(f"/api/apps/{app}/channels/{channel}"))["package"]
    return package["version"] if package else None


def test_a_round_registers_floors_and_target_and_hosts_the_payloads(
    client: TestClient, clock: FakeClock, downstream: dict[str, str], upstream: Upstream,
    tmp_path: Path,
) -> None:  # fmt: skip
    hosted = tmp_path / "hosted"
    settings = SyncSettings(upstream.url, host_packages_dir=hosted, public_url="http://mirror")
    syncer = Syncer(engine_of(client), clock, settings)
    assert [c.name for c in syncer.channels()] == ["beta", "stable"]

    assert syncer.sync_once() == {"stable/amd64-usr": TARGET}

    app = downstream["app"]
    assert channel_version(client, app, downstream["stable"]) == TARGET
    assert channel_version(client, app, downstream["beta"]) is None  # upstream has no beta
    floors = _ok(client.get(f"/api/apps/{app}/channels/{downstream['stable']}/floors"))
    assert [(f["version"], f["floor_reason"]) for f in floors["packages"]] == [
        (FLOOR, "filesystem migration")
    ]
    packages = {p["version"]: p for p in _ok(client.get(f"/api/apps/{app}/packages"))["packages"]}
    for version, data in PAYLOADS.items():
        package = packages[version]
        assert package["url"] == f"http://mirror/flatcar/amd64/{version}/"
        assert package["filename"] == "update.gz"
        assert int(package["size"]) == len(data)
        digest = base64.b64decode(package["flatcar_action"]["sha256"])
        assert digest == hashlib.sha256(data).digest()
        assert (hosted / "amd64" / version / "update.gz").read_bytes() == data
    # The target's extra file came along, registered and hosted under its own name.
    (extra,) = packages[TARGET]["extra_files"]
    assert (extra["name"], int(extra["size"])) == ("oem-azure.gz", len(OEM))
    assert (hosted / "amd64" / TARGET / "oem-azure.gz").read_bytes() == OEM
    assert packages[FLOOR]["extra_files"] is None
    # A node walks the floor first, sent to this server's hosted copy.
    answer = post(client, Node("node-1", "4000.2.0").check_request())
    assert answer.updatecheck is not None
    assert [m.version for m in answer.updatecheck.manifests] == [FLOOR]
    assert answer.updatecheck.urls == [f"http://mirror/flatcar/amd64/{FLOOR}/"]
    # Nothing new upstream: the next round changes nothing and reuses the packages.
    assert syncer.sync_once() == {}
    assert len(_ok(client.get(f"/api/apps/{app}/packages"))["packages"]) == 2


def test_serve_hosts_the_synced_payloads(
    data_dir: Path, clock: FakeClock, upstream: Upstream, tmp_path: Path
) -> None:
    hosted = tmp_path / "hosted"
    sync = SyncSettings(upstream.url, host_packages_dir=hosted, public_url="http://mirror")
    with TestClient(create_app(ServerSettings(data_dir=data_dir), clock=clock)) as c:
        seed = Seed(engine_of(c))
        seed.channel(seed.app(FLATCAR, "Flatcar"), "stable", None)
        Syncer(engine_of(c), clock, sync).sync_once()
    # `wellcar serve --sync-from … --host-packages DIR` serves DIR at /flatcar/ (here with
    # an upstream that is gone: what was synced is still served).
    gone = SyncSettings("http://127.0.0.1:9/v1/update/", host_packages_dir=hosted,
                        public_url="http://mirror")  # fmt: skip
    with TestClient(create_app(ServerSettings(data_dir=data_dir, sync=gone), clock=clock)) as c:
        for version, data in PAYLOADS.items():
            assert c.get(f"/flatcar/amd64/{version}/update.gz").content == data
        assert c.get(f"/flatcar/amd64/{TARGET}/oem-azure.gz").content == OEM
        assert c.get("/flatcar/../data/wellcar.db").status_code == 404


def test_without_hosting_nodes_are_sent_to_the_upstreams_url(
    client: TestClient, clock: FakeClock, downstream: dict[str, str], upstream: Upstream
) -> None:
    Syncer(engine_of(client), clock, SyncSettings(upstream.url)).sync_once()
    packages = _ok(client.get(f"/api/apps/{downstream['app']}/packages"))["packages"]
    assert {p["url"] for p in packages} == {f"{upstream.files.url}/{FLOOR}/",
                                            f"{upstream.files.url}/{TARGET}/"}  # fmt: skip


def test_garbage_from_the_upstream_changes_nothing(
    client: TestClient, clock: FakeClock, downstream: dict[str, str], upstream: Upstream
) -> None:
    syncer = Syncer(engine_of(client), clock, SyncSettings(upstream.files.url + "/v1/update/"))
    assert syncer.sync_once() == {}
    assert channel_version(client, downstream["app"], downstream["stable"]) is None
    assert _ok(client.get(f"/api/apps/{downstream['app']}/packages"))["packages"] == []
    down = Syncer(engine_of(client), clock, SyncSettings("http://127.0.0.1:9/v1/update/"))
    assert down.sync_once() == {}  # an upstream that is not there


def test_a_tampered_payload_is_not_hosted_and_nothing_is_registered(
    client: TestClient, clock: FakeClock, downstream: dict[str, str], upstream: Upstream,
    tmp_path: Path,
) -> None:  # fmt: skip
    original = upstream.files.files[f"/{TARGET}/update.gz"]
    upstream.files.files[f"/{TARGET}/update.gz"] = original[:-1] + b"!"
    try:
        hosted = tmp_path / "hosted"
        settings = SyncSettings(upstream.url, host_packages_dir=hosted, public_url="http://m")
        assert Syncer(engine_of(client), clock, settings).sync_once() == {}
    finally:
        upstream.files.files[f"/{TARGET}/update.gz"] = original
    assert channel_version(client, downstream["app"], downstream["stable"]) is None
    assert _ok(client.get(f"/api/apps/{downstream['app']}/packages"))["packages"] == []
    assert not (hosted / "amd64" / TARGET / "update.gz").exists()
    assert [p.name for p in hosted.rglob(".*")] == []  # no temporary file left


def test_settings_are_checked() -> None:
    with pytest.raises(SyncError, match="http"):
        SyncSettings("ftp://x").check()
    with pytest.raises(SyncError, match="--public-url"):
        SyncSettings("http://x", host_packages_dir=Path("/tmp/x")).check()
    with pytest.raises(SyncError, match="a minute"):
        SyncSettings("http://x", interval=timedelta(seconds=5)).check()


def test_serve_syncs_at_start(data_dir: Path, clock: FakeClock, upstream: Upstream) -> None:
    """`wellcar serve --sync-from`: the first round runs as the server starts."""
    with TestClient(create_app(ServerSettings(data_dir=data_dir), clock=clock)) as c:
        seed = Seed(engine_of(c))
        app = seed.app(FLATCAR, "Flatcar")
        stable = seed.channel(app, "stable", None)
    settings = ServerSettings(data_dir=data_dir, sync=SyncSettings(upstream.url))
    with TestClient(create_app(settings, clock=clock)) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        for _ in range(200):
            if channel_version(c, app, stable) == TARGET:
                break
            threading.Event().wait(0.05)
        assert channel_version(c, app, stable) == TARGET


def test_worker_processes_get_the_sync_settings(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = SyncSettings("http://up/v1/update/", timedelta(minutes=5), data_dir / "hosted",
                        "http://mirror", "http://up/{{ARCH}}-usr/{{VERSION}}/")  # fmt: skip
    for name, value in settings_to_env(ServerSettings(data_dir, sync=sync)).items():
        monkeypatch.setenv(name, value)
    worker_app = app_from_env()
    assert worker_app.state.settings.sync == sync
    worker_app.state.engine.dispose()


def test_a_packages_url_template_names_each_version() -> None:
    update = UpdateCheckResponse("ok", ["http://up/files/"],
                                 [Manifest(FLOOR, is_floor=True), Manifest(TARGET)])  # fmt: skip
    floor = update.manifests[0]
    template = "http://cdn/{{ARCH}}-usr/{{VERSION}}/"
    assert package_url(update, floor, "amd64", template) == f"http://cdn/amd64-usr/{FLOOR}/"
    with pytest.raises(SyncError, match="--sync-packages-url"):
        package_url(update, floor, "amd64", None)  # the URL names no version
    named = UpdateCheckResponse("ok", [f"http://up/amd64-usr/{TARGET}/"], update.manifests)
    assert package_url(named, floor, "amd64", None) == f"http://up/amd64-usr/{FLOOR}/"


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "..", ""])
def test_an_upstream_file_name_that_is_a_path_is_refused(name: str) -> None:
    with pytest.raises(SyncError, match="not a plain file name"):
        hosted_file_name(name)


def test_extra_files_are_checked_by_sha256_or_else_sha1() -> None:
    data = b"x"
    sha256, sha1 = hashlib.sha256(data), hashlib.sha1(data)
    by_hex = OmahaPackage("f", 1, hash_sha256=sha256.hexdigest())
    assert extra_file_check("1", by_hex) == ("sha256", sha256.hexdigest())
    by_b64 = OmahaPackage("f", 1, hash=base64.b64encode(sha1.digest()).decode())
    assert extra_file_check("1", by_b64) == ("sha1", sha1.hexdigest())
    with pytest.raises(SyncError, match="no hash"):
        extra_file_check("1", OmahaPackage("f", 1))
    with pytest.raises(SyncError, match="not a sha256 digest"):
        extra_file_check("1", OmahaPackage("f", 1, hash_sha256="abc"))
