"""Payload download against a loopback HTTP server with Range support."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import random
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from wellcar.agent import download as download_module
from wellcar.agent.download import (
    download_payload,
    final_path,
    partial_path,
    remove_stale,
)
from wellcar.agent.errors import (
    DownloadError,
    PayloadHashMismatch,
    PayloadSizeMismatch,
)
from wellcar.agent.omaha_client import UpdateOffer

PAYLOAD = random.Random(1).randbytes(600 * 1024 + 123)  # a few chunks, not chunk-aligned
WRONG = bytes(b ^ 0xFF for b in PAYLOAD)  # same size, other bytes
NAME = "wellcar_update.gz"


Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PayloadServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PayloadServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [h.get("Range") for p, h in self.seen if p == path]


def start_server() -> PayloadServer:
    srv = PayloadServer()
    threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True).start()
    return srv


@pytest.fixture
def server() -> Iterator[PayloadServer]:
    srv = start_server()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


_RANGE = re.compile(r"bytes=(\d+)-")


def serve(
    data: bytes,
    *,
    honor_range: bool = True,
    cut_after: int | None = None,
    content_range: Callable[[int, int], str] | None = None,
    headers: dict[str, str] | None = None,
) -> Route:
    """Serve ``data``, honouring ``Range: bytes=N-`` unless told not to; with
    ``cut_after``, hang up after that many body bytes (Content-Length promises all)."""

    def route(h: Handler) -> None:
        start = 0
        m = _RANGE.fullmatch(h.headers.get("Range") or "")
        if honor_range and m:
            start = int(m.group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            cr = content_range(start, len(data)) if content_range else None
            h.send_header("Content-Range", cr or f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if cut_after is not None:
            h.wfile.write(body[:cut_after])
            h.close_connection = True
            return
        h.wfile.write(body)

    return route


def status_route(status: int) -> Route:
    def route(h: Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def endless(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        while True:
            h.wfile.write(PAYLOAD)
    except OSError:
        pass


def make_offer(*urls: str, data: bytes = PAYLOAD, **kw: Any) -> UpdateOffer:
    return UpdateOffer(
        version="2.0.0",
        urls=tuple(urls),
        size=len(data),
        sha256_b64=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        package_name=NAME,
        **kw,
    )


def fetch(offer: UpdateOffer, dest: Path, http: httpx.Client, **kw: Any) -> Path:
    kw.setdefault("retry_delay", 0)
    return download_payload(offer, dest, http, **kw)


# --- the normal case and resume ----------------------------------------------------------


def test_download_verifies_and_renames(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/p/" + NAME] = serve(PAYLOAD)
    offer = make_offer(server.url("/p/" + NAME))
    progress: list[tuple[int, int]] = []
    path = fetch(offer, tmp_path / "dl", http, on_progress=lambda d, t: progress.append((d, t)))
    assert path == final_path(offer, tmp_path / "dl")
    assert path.name == hashlib.sha256(PAYLOAD).hexdigest() + ".payload"
    assert path.read_bytes() == PAYLOAD
    assert not partial_path(offer, tmp_path / "dl").exists()
    done = [d for d, _ in progress]
    assert done == sorted(done) and done[0] == 0 and done[-1] == len(PAYLOAD)
    assert {t for _, t in progress} == {len(PAYLOAD)}
    assert server.seen[0][1]["Accept-Encoding"] == "identity"


def test_interrupted_download_resumes_with_range(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/cut"] = serve(PAYLOAD, cut_after=100_000)
    server.routes["/good"] = serve(PAYLOAD)
    dest = tmp_path / "dl"
    with pytest.raises(DownloadError) as info:
        fetch(make_offer(server.url("/cut"), max_failures_per_url=1), dest, http)
    assert info.value.error_code == 9
    partial = partial_path(make_offer(), dest)
    assert partial.stat().st_size == 100_000  # kept for the resume
    # The agent restarts (new call, e.g. after a crash); the same payload resumes.
    path = fetch(make_offer(server.url("/good")), dest, http)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/good") == ["bytes=100000-"]


def test_resume_within_one_call_after_a_broken_connection(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    calls = {"n": 0}
    cut, good = serve(PAYLOAD, cut_after=200_000), serve(PAYLOAD)

    def flaky(h: Handler) -> None:
        calls["n"] += 1
        (cut if calls["n"] == 1 else good)(h)

    server.routes["/flaky"] = flaky
    path = fetch(make_offer(server.url("/flaky")), tmp_path, http)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/flaky") == [None, "bytes=200000-"]


def test_server_ignoring_range_means_restart(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    offer = make_offer(server.url("/norange"))
    partial_path(offer, tmp_path).write_bytes(PAYLOAD[:5000])
    server.routes["/norange"] = serve(PAYLOAD, honor_range=False)
    progress: list[int] = []
    path = fetch(offer, tmp_path, http, on_progress=lambda d, t: progress.append(d))
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/norange") == ["bytes=5000-"]
    assert progress[0] == 5000 and 0 in progress  # progress went back to zero


def test_bad_content_range_restarts_without_range(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    offer = make_offer(server.url("/liar"))
    partial_path(offer, tmp_path).write_bytes(PAYLOAD[:5000])
    server.routes["/liar"] = serve(
        PAYLOAD, content_range=lambda start, total: f"bytes 0-{total - 1}/{total}"
    )
    path = fetch(offer, tmp_path, http)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/liar") == ["bytes=5000-", None]


def test_content_range_with_another_total_is_a_size_mismatch(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    offer = make_offer(server.url("/other"))
    partial_path(offer, tmp_path).write_bytes(PAYLOAD[:5000])
    server.routes["/other"] = serve(
        PAYLOAD, content_range=lambda start, total: f"bytes {start}-{total - 1}/{total + 1}"
    )
    with pytest.raises(PayloadSizeMismatch) as info:
        fetch(offer, tmp_path, http)
    assert info.value.error_code == 11


def test_partial_beyond_416_restarts(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    # A partial of the right name but a server with a shorter file answers 416.
    short = PAYLOAD[:1000]
    offer = make_offer(server.url("/short"))
    partial_path(offer, tmp_path).write_bytes(PAYLOAD[:2000])
    server.routes["/short"] = serve(short)
    with pytest.raises(PayloadSizeMismatch):
        fetch(offer, tmp_path, http)
    assert server.ranges("/short") == ["bytes=2000-", None]


def test_stale_partial_with_wrong_bytes_gets_one_fresh_try(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    offer = make_offer(server.url("/p"), max_failures_per_url=5)
    partial_path(offer, tmp_path).write_bytes(WRONG[:50_000])
    server.routes["/p"] = serve(PAYLOAD)
    path = fetch(offer, tmp_path, http)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/p") == ["bytes=50000-", None]


def test_oversized_stale_partial_is_discarded(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    offer = make_offer(server.url("/p"))
    partial_path(offer, tmp_path).write_bytes(PAYLOAD + b"extra")
    server.routes["/p"] = serve(PAYLOAD)
    assert fetch(offer, tmp_path, http).read_bytes() == PAYLOAD
    assert server.ranges("/p") == [None]


def test_verified_file_is_reused_and_a_corrupt_one_replaced(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/p"] = serve(PAYLOAD)
    offer = make_offer(server.url("/p"))
    path = fetch(offer, tmp_path, http)
    assert fetch(offer, tmp_path, http) == path
    assert len(server.seen) == 1  # no second request
    path.write_bytes(WRONG)
    assert fetch(offer, tmp_path, http).read_bytes() == PAYLOAD
    assert len(server.seen) == 2


# --- wrong bytes and hostile servers --------------------------------------------------------


def test_wrong_hash_is_error_10_and_leaves_nothing(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/wrong"] = serve(WRONG)
    offer = make_offer(server.url("/wrong"))
    with pytest.raises(PayloadHashMismatch) as info:
        fetch(offer, tmp_path, http)
    assert info.value.error_code == 10
    assert not final_path(offer, tmp_path).exists()
    assert partial_path(offer, tmp_path).stat().st_size == 0
    assert len(server.seen) == 1  # a fresh download with a wrong hash: next URL, not a retry


def test_wrong_mirror_then_good_mirror(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/wrong"] = serve(WRONG)
    server.routes["/good"] = serve(PAYLOAD)
    path = fetch(make_offer(server.url("/wrong"), server.url("/good")), tmp_path, http)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/good") == [None]


def test_endless_body_is_cut_off_at_the_size(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/endless"] = endless
    offer = make_offer(server.url("/endless"))
    progress: list[int] = []
    with pytest.raises(PayloadSizeMismatch) as info:
        fetch(offer, tmp_path, http, on_progress=lambda d, t: progress.append(d))
    assert info.value.error_code == 11
    assert max(progress) <= len(PAYLOAD)
    assert partial_path(offer, tmp_path).stat().st_size <= len(PAYLOAD)


@pytest.mark.parametrize("data", [PAYLOAD + b"more", PAYLOAD[:-1]])
def test_content_length_mismatch_is_error_11(
    server: PayloadServer, http: httpx.Client, tmp_path: Path, data: bytes
) -> None:
    server.routes["/p"] = serve(data)
    with pytest.raises(PayloadSizeMismatch) as info:
        fetch(make_offer(server.url("/p")), tmp_path, http)
    assert info.value.error_code == 11


def test_404_then_working_mirror(server: PayloadServer, http: httpx.Client, tmp_path: Path) -> None:
    server.routes["/good"] = serve(PAYLOAD)
    offer = make_offer(server.url("/missing"), server.url("/good"))
    assert fetch(offer, tmp_path, http).read_bytes() == PAYLOAD
    assert [p for p, _ in server.seen] == ["/missing", "/good"]  # 404 is not retried


def test_transient_errors_count_against_the_url(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/busy"] = status_route(503)
    server.routes["/good"] = serve(PAYLOAD)
    sleeps: list[float] = []
    offer = make_offer(server.url("/busy"), server.url("/good"), max_failures_per_url=3)
    path = fetch(offer, tmp_path, http, retry_delay=0.5, sleep=sleeps.append)
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in server.seen] == ["/busy"] * 3 + ["/good"]
    assert sleeps == [0.5, 0.5]  # between retries of one URL, not before moving on


def test_every_url_failing_is_a_download_error(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/busy"] = status_route(500)
    offer = make_offer(server.url("/missing"), server.url("/busy"), max_failures_per_url=2)
    with pytest.raises(DownloadError) as info:
        fetch(offer, tmp_path, http)
    assert info.value.error_code == 9
    assert "HTTP 404" in str(info.value) and "HTTP 500" in str(info.value)


def test_compressed_transfer_is_refused(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    server.routes["/gz"] = serve(PAYLOAD, headers={"Content-Encoding": "gzip"})
    with pytest.raises(DownloadError, match="Content-Encoding"):
        fetch(make_offer(server.url("/gz")), tmp_path, http)


def test_redirect_to_mirror_and_credentials_stay_home(
    server: PayloadServer, http: httpx.Client, tmp_path: Path
) -> None:
    other = start_server()
    try:
        other.routes["/cdn"] = serve(PAYLOAD)

        def redirect(h: Handler) -> None:
            h.send_response(302)
            h.send_header("Location", other.url("/cdn"))
            h.send_header("Content-Length", "0")
            h.end_headers()

        server.routes["/p"] = redirect
        path = fetch(make_offer(server.url("/p")), tmp_path, http, auth=("me", "pw"))
        assert path.read_bytes() == PAYLOAD
        assert server.seen[0][1]["Authorization"].startswith("Basic ")
        assert "Authorization" not in other.seen[0][1]
    finally:
        other.shutdown()
        other.server_close()


# --- the local disk ------------------------------------------------------------------------


def test_disk_full_while_writing(
    server: PayloadServer, http: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/p"] = serve(PAYLOAD)
    offer = make_offer(server.url("/p"))
    real_write = download_module._write_all
    written = {"n": 0}

    def filling_disk(fd: int, data: bytes) -> None:
        if written["n"] >= 300_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)
        written["n"] += len(data)

    monkeypatch.setattr(download_module, "_write_all", filling_disk)
    with pytest.raises(DownloadError, match="no space left") as info:
        fetch(offer, tmp_path, http)
    assert info.value.error_code == 14
    assert len(server.seen) == 1  # a full disk is not retried against any URL
    kept = partial_path(offer, tmp_path).stat().st_size
    assert kept == written["n"] > 0  # what was written is kept, nothing half-written
    monkeypatch.undo()
    assert fetch(offer, tmp_path, http).read_bytes() == PAYLOAD
    assert server.ranges("/p")[-1] == f"bytes={kept}-"


def test_not_enough_space_before_starting(
    server: PayloadServer, http: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(DownloadError, match="not enough space") as info:
        fetch(make_offer(server.url("/p")), tmp_path, http)
    assert info.value.error_code == 14
    assert server.seen == []


def test_remove_stale(tmp_path: Path) -> None:
    keep = make_offer("http://127.0.0.1:9/p")
    other = replace(keep, sha256_b64=base64.b64encode(b"\x01" * 32).decode())
    for offer in (keep, other):
        partial_path(offer, tmp_path).write_bytes(b"x")
        final_path(offer, tmp_path).write_bytes(b"x")
    (tmp_path / "status.json").write_text("{}")
    removed = remove_stale(tmp_path, keep)
    assert sorted(removed) == sorted([partial_path(other, tmp_path), final_path(other, tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [partial_path(keep, tmp_path).name, final_path(keep, tmp_path).name, "status.json"]
    )
    assert len(remove_stale(tmp_path)) == 2
    assert remove_stale(tmp_path / "missing") == []
