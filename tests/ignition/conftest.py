"""Shared helpers: a small target root, configs from dicts, local HTTP servers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wellcar.ignition import Config, parse_config


def config_of(data: dict[str, Any]) -> Config:
    return parse_config(json.dumps(data).encode()).config


def sha512(data: bytes) -> str:
    return "sha512-" + hashlib.sha512(data).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every node under root with its mode and contents (or link target)."""
    nodes: dict[str, tuple[int, bytes | str | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            nodes[str(path.relative_to(root))] = (st.st_mode, str(path.readlink()))
        elif path.is_file():
            nodes[str(path.relative_to(root))] = (st.st_mode, path.read_bytes())
        else:
            nodes[str(path.relative_to(root))] = (st.st_mode, None)
    return nodes


SHADOW_GID = 42  # Debian's shadow group (base-passwd), on this host and in the image


def make_account_root(target: Path) -> Path:
    """A target root with an image's account database: Debian's login.defs and useradd
    defaults, shadow and gshadow root:shadow 0640, empty subuid/subgid (as the passwd
    package leaves them), /etc/skel and Flatcar's core."""
    etc = target / "etc"
    (etc / "default").mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\ncore:x:500:500:Core:/home/core:/bin/bash\n"
    )
    (etc / "group").write_text(
        "root:x:0:\nwheel:x:10:\nsudo:x:27:\nshadow:x:42:\nusers:x:100:\ncore:x:500:\n"
    )
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\ncore:!:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nwheel:*::\nsudo:*::\nshadow:*::\nusers:*::\ncore:!::\n")
    for name in ("shadow", "gshadow"):
        os.chown(etc / name, 0, SHADOW_GID)
        (etc / name).chmod(0o640)
    for name in ("login.defs", "default/useradd"):
        shutil.copyfile(Path("/etc") / name, etc / name)
    for name in ("subuid", "subgid"):
        (etc / name).write_text("")
    (etc / "skel").mkdir()
    (etc / "skel/.profile").write_text("# skel\n")
    (target / "home" / "core").mkdir(parents=True)
    (target / "root").mkdir(mode=0o700)
    return target


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A target root with a base account database, like an image's."""
    if os.geteuid() != 0:
        pytest.skip("useradd --root chroots into the root: needs root")
    return make_account_root(tmp_path / "root")


Handler = Callable[[BaseHTTPRequestHandler], tuple[int, bytes]]


@pytest.fixture
def http_server() -> Iterator[Callable[[Handler], str]]:
    """Start a server on 127.0.0.1 answering with handler(request); gives its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Handler) -> str:
        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = handler(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
