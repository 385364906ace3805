"""A wall-clock deadline for one HTTP exchange, enforced whatever the server sends.

Checking the clock when data arrives is not enough: a server that sends one byte just
before each read timeout keeps every check passing, and a server that sends nothing keeps
a read blocked. So a timer thread shuts the connection's socket down when the deadline
passes, which makes a blocked read return at once; the reader then raises
FetchDeadlineError. The socket is learnt from httpcore's ``trace`` extension when the
connection is made, which is why clients used with a Deadline should not keep connections
alive (``httpx.Limits(max_keepalive_connections=0)``): a reused connection is not seen, and
then only the checks between reads (bounded by the client's read timeout) apply.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

from wellcar.netfetch.errors import FetchDeadlineError

CONNECT_COMPLETE = "connection.connect_tcp.complete"


class Deadline:
    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    # --- the httpcore trace extension: remember each new connection's socket
    def trace(self, event_name: str, info: dict[str, Any]) -> None:
        if event_name != CONNECT_COMPLETE:
            return
        stream = info.get("return_value")
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.expired:
                    self._shut(sock)

    @property
    def extensions(self) -> dict[str, Any]:
        """``extensions=`` for ``httpx.Client.build_request``."""
        return {"trace": self.trace}

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def error(self) -> FetchDeadlineError:
        return FetchDeadlineError(f"{self.what}: not complete after {self.seconds:.0f} s")

    def check(self) -> None:
        """Raise FetchDeadlineError once the deadline has passed."""
        if self.expired or time.monotonic() >= self.expires_at:
            raise self.error()

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def __enter__(self) -> Deadline:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
        # The read that the timer broke fails with whatever the socket layer said;
        # what really happened is the deadline.
        if isinstance(exc, Exception) and self.expired and not isinstance(exc, FetchDeadlineError):
            raise self.error() from exc
