"""A payload mirror for system tests: files from a directory over HTTP on 127.0.0.1, with
Range support (the agent resumes downloads) and a log of what was served."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Mirror:
    root: Path
    port: int = 0
    served: list[str] = field(default_factory=list)

    def add(self, relative: str, source: Path) -> str:
        """Hard-link (or copy) ``source`` to ``relative``; returns the URL path."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
        return "/" + relative


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = (mirror.root / self.path.lstrip("/")).resolve()
            if not path.is_file() or mirror.root.resolve() not in path.parents:
                self.send_error(404)
                return
            size = path.stat().st_size
            start = 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and ranged.endswith("-"):
                start = min(int(ranged[6:-1]), size)
            mirror.served.append(f"{self.path} from {start}")
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            with path.open("rb") as source:
                source.seek(start)
                # The guest may go away mid-download: power loss is part of the tests.
                with suppress(BrokenPipeError, ConnectionResetError):
                    shutil.copyfileobj(source, self.wfile, 1 << 20)

    return Handler


@contextmanager
def serve_mirror(root: Path) -> Iterator[Mirror]:
    root.mkdir(parents=True, exist_ok=True)
    mirror = Mirror(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    mirror.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
