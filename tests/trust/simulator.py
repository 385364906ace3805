"""A release repository on disk, served over HTTP on 127.0.0.1, for the real client.

The repository is built with wellcar.trust.repository (the code `wellcar release` uses);
attacks are played by the mirror: ``overrides`` replace what a path serves (old bytes,
tampered bytes, or endless data), the way a compromised server or mirror would.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from wellcar.keyfiles import PRIVATE_SUFFIX
from wellcar.trust.client import TrustedUpdateVerifier
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TargetEntry, TrustRepository

ENDLESS = b"\0ENDLESS"
BOARD = "amd64-usr"


def _endless() -> Iterator[bytes]:
    chunk = b"x" * 65536
    while True:
        yield chunk


class _Handler(BaseHTTPRequestHandler):
    server: _MirrorServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        path = self.path.lstrip("/").split("?", 1)[0]
        self.server.requests.append(path)
        override = self.server.overrides.get(path)
        if override == ENDLESS:
            self.send_response(200)
            self.end_headers()  # no Content-Length: data until the client hangs up
            try:
                for chunk in _endless():
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
            return
        if override is not None:
            data: bytes | None = override
        else:
            file = self.server.root / path
            data = file.read_bytes() if file.is_file() else None
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return


class _MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.overrides: dict[str, bytes] = {}
        self.requests: list[str] = []


@dataclass
class RepoSim:
    base: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __post_init__(self) -> None:
        self.tree = self.base / "tree"
        self.keys = self.base / "keys"
        self.repo, _ = TrustRepository.initialize(self.tree, self.keys, now=self.now)
        self.shipped_root = self.base / "shipped-root.json"
        shutil.copyfile(self.tree / "metadata" / "1.root.json", self.shipped_root)
        self.server = _MirrorServer(self.tree)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def overrides(self) -> dict[str, bytes]:
        return self.server.overrides

    def keyring(self, *names: str) -> Keyring:
        """The named keys (e.g. "snapshot", "timestamp"), or all of them."""
        if not names:
            return Keyring.load([self.keys])
        return Keyring.load([self.keys / f"{name}{PRIVATE_SUFFIX}" for name in names])

    def release(
        self, version: str, channel: str = "stable", content: bytes | None = None,
        board: str = BOARD,
    ) -> str:  # fmt: skip
        """Publish a payload target; return its name."""
        name = f"{channel}/{board}/{version}/update.payload"
        path = self.tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if content is not None else f"payload {version}".encode())
        custom = {"version": version, "channel": channel, "board": board}
        self.repo.stage_targets([TargetEntry(name, path, custom)], now=self.now)
        self.repo.publish(self.keyring(), now=self.now)
        return name

    def metadata(self, name: str) -> bytes:
        return (self.tree / "metadata" / name).read_bytes()

    def client(self, node: str = "node", board: str | None = BOARD) -> TrustedUpdateVerifier:
        return TrustedUpdateVerifier(self.base / node, self.shipped_root, self.url, board=board)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
