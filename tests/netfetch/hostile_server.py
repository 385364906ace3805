"""An HTTP server on 127.0.0.1 that misbehaves on purpose, path by path.

Plain sockets, so that it can do what no well-behaved server library would: drip one byte
at a time, go silent after accepting, or send a compressed bomb. A path without a behaviour
is served from ``files`` (or 404).
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

Behaviour = Callable[[socket.socket, bytes], None]  # (connection, the file's bytes or b"")


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def serve(conn: socket.socket, data: bytes) -> None:
    conn.sendall(_head("200 OK", {"Content-Length": str(len(data)), "Connection": "close"}) + data)


def drip(interval: float, total: int | None = None) -> Behaviour:
    """Headers at once, then one byte every ``interval`` seconds (of ``total`` bytes)."""

    def behaviour(conn: socket.socket, data: bytes) -> None:
        size = total if total is not None else len(data) or 1_000_000
        conn.sendall(_head("200 OK", {"Content-Length": str(size), "Connection": "close"}))
        for _ in range(size):
            time.sleep(interval)
            conn.sendall(b"x")

    return behaviour


def drip_headers(interval: float) -> Behaviour:
    """The status line and headers themselves, one byte at a time."""

    def behaviour(conn: socket.socket, data: bytes) -> None:
        for byte in _head("200 OK", {"Content-Length": "10"}) * 100:
            time.sleep(interval)
            conn.sendall(bytes([byte]))

    return behaviour


def silent(seconds: float) -> Behaviour:
    """Accept, read the request, answer nothing."""

    def behaviour(conn: socket.socket, data: bytes) -> None:
        time.sleep(seconds)

    return behaviour


@cache
def gzip_bomb(expanded: int = 1 << 30) -> bytes:
    """``expanded`` zero bytes, gzipped twice (a few KiB on the wire)."""

    def gzip_stream(chunks: Callable[[], bytes], count: int) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = [packer.compress(chunks()) for _ in range(count)]
        return b"".join(out) + packer.flush()

    zeros = bytes(1 << 20)
    inner = gzip_stream(lambda: zeros, expanded >> 20)
    return gzip_stream(lambda: inner, 1)


def bomb(conn: socket.socket, data: bytes) -> None:
    body = gzip_bomb()
    headers = {"Content-Encoding": "gzip, gzip", "Content-Length": str(len(body)),
               "Connection": "close"}  # fmt: skip
    conn.sendall(_head("200 OK", headers) + body)


@dataclass
class HostileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                path = request.split(b" ", 2)[1].decode().split("?", 1)[0].lstrip("/")
                self.requests.append(path)
                data = self.files.get(path, b"")
                behaviour = self.behaviours.get(path)
                if behaviour is not None:
                    behaviour(conn, data)
                elif path in self.files:
                    serve(conn, data)
                else:
                    conn.sendall(_head("404 Not Found", {"Content-Length": "0"}))
            except OSError:  # the client hung up: that is what the tests want
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
