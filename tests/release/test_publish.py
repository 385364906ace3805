"""`release publish` against a real update server, and a node verifying the result."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.loopback_ports import free_port
from tests.release.builds import make_build
from tests.release.conftest import Workspace
from tests.trust.simulator import _MirrorServer
from wellcar.cli.api_client import ApiClient
from wellcar.release.create import create_release
from wellcar.release.errors import PublishError
from wellcar.release.publish import publish_release
from wellcar.server.api.app import create_app
from wellcar.server.api.models import AppCreate
from wellcar.server.settings import ServerSettings
from wellcar.trust.client import TrustedUpdateVerifier
from wellcar.trust.errors import TargetMismatchError

ADMIN = "release-admin-token"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WELLCAR_ADMIN_TOKEN", ADMIN)
        app = create_app(ServerSettings(data_dir=tmp_path_factory.mktemp("server")))
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_publish_registers_the_package_and_moves_the_channel(
    ws: Workspace, server_url: str
) -> None:
    build = make_build(ws.base / "b", "4799.2.0")
    create_release(ws.tree, build, "stable", ws.inputs())
    with ApiClient(server_url, ADMIN) as api:
        app = api.create_app(AppCreate(name="wellcar-publish-test")).id
        result = publish_release(
            api, ws.tree, "4799.2.0", app=app, base_url="https://cdn.example/release"
        )
        assert result.created_package and result.created_channel
        package = result.package
        assert package.url == "https://cdn.example/release/stable/amd64-usr/4799.2.0/"
        assert package.filename == "update.payload"
        digest = hashlib.sha256((build / "update.payload").read_bytes()).digest()
        assert package.flatcar_action is not None
        assert package.flatcar_action.sha256 == base64.b64encode(digest).decode()
        channel = api.find_channel(app, "stable")
        assert channel.package_id == package.id
        # Idempotent: publishing again reuses the package.
        again = publish_release(api, ws.tree, "4799.2.0", app=app, base_url="https://x/")
        assert not again.created_package and again.package.id == package.id


def test_publish_refuses_a_release_that_changed_after_signing(
    ws: Workspace, server_url: str
) -> None:
    create_release(ws.tree, make_build(ws.base / "b", "4799.2.0"), "stable", ws.inputs())
    (ws.tree / "stable/amd64-usr/4799.2.0/update.payload").write_bytes(b"swapped")
    with ApiClient(server_url, ADMIN) as api:
        app = api.create_app(AppCreate(name="wellcar-publish-refused")).id
        with pytest.raises(PublishError, match="differs from its signed target"):
            publish_release(api, ws.tree, "4799.2.0", app=app, base_url="https://x/")
        assert [p for p in api.list_packages(app) if p.version == "4799.2.0"] == []


def test_a_node_verifies_a_released_payload(ws: Workspace, tmp_path: Path) -> None:
    build = make_build(ws.base / "b", "4799.2.0")
    create_release(ws.tree, build, "stable", ws.inputs())
    mirror = _MirrorServer(ws.tree)
    thread = threading.Thread(target=mirror.serve_forever, daemon=True)
    thread.start()
    try:
        verifier = TrustedUpdateVerifier(
            tmp_path / "node",
            ws.tree / "metadata" / "1.root.json",
            f"http://127.0.0.1:{mirror.server_address[1]}",
            board="amd64-usr",
        )
        verifier.refresh()
        target = verifier.find_payload("4799.2.0")
        assert target.name == "stable/amd64-usr/4799.2.0/update.payload"
        verifier.verify_payload(target.name, build / "update.payload", "4790.2.0")
        with pytest.raises(TargetMismatchError):
            verifier.verify_payload(target.name, build / "disk.img", "4790.2.0")
    finally:
        mirror.shutdown()
        mirror.server_close()


def test_every_board_has_a_server_architecture() -> None:
    from wellcar.release.boards import BOARDS
    from wellcar.release.publish import BOARD_ARCH

    assert tuple(BOARD_ARCH) == BOARDS
