"""Fetching resources: data: URLs, http(s) with headers and retries, gzip, hashes, and
merge/replace of referenced configs."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from wellcar.ignition.errors import ConfigInvalidError, FetchError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.report import Report
from wellcar.ignition.resolve import resolve
from wellcar.ignition.types import HttpHeader, Resource, Verification

from .conftest import Handler, config_of, sha512

Server = Callable[[Handler], str]


def quick_fetcher(attempts: int = 3) -> tuple[Fetcher, list[float]]:
    sleeps: list[float] = []
    return Fetcher(attempts=attempts, header_timeout_s=2, sleep=sleeps.append), sleeps


def test_data_urls_plain_and_base64() -> None:
    fetcher = Fetcher()
    assert fetcher.fetch(Resource(source="data:,GROUP%3Dbeta%0A"), "$") == b"GROUP=beta\n"
    assert fetcher.fetch(Resource(source="data:text/plain;base64,aGk="), "$") == b"hi"


def test_gzip_and_hash_are_over_decompressed_data() -> None:
    body = b"tool\n" * 100
    import base64

    source = "data:;base64," + base64.b64encode(gzip.compress(body)).decode()
    good = Resource(source=source, compression="gzip", verification=Verification(sha512(body)))
    assert Fetcher().fetch(good, "$") == body
    bad = Resource(source=source, compression="gzip", verification=Verification(sha512(b"x")))
    with pytest.raises(FetchError, match=r"\$.storage.files\[0\].contents: sha512 mismatch"):
        Fetcher().fetch(bad, "$.storage.files[0].contents")


def test_http_sends_headers(http_server: Server) -> None:
    seen: list[str | None] = []

    def handler(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        seen.append(request.headers.get("X-Token"))
        return 200, b"secret config"

    url = http_server(handler)
    resource = Resource(source=f"{url}/a", http_headers=(HttpHeader("X-Token", "t0k"),))
    assert Fetcher().fetch(resource, "$") == b"secret config"
    assert seen == ["t0k"]


def test_http_retries_5xx_with_backoff_then_succeeds(http_server: Server) -> None:
    calls: list[int] = []

    def handler(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        calls.append(1)
        return (503, b"busy") if len(calls) < 3 else (200, b"ok")

    fetcher, sleeps = quick_fetcher(attempts=5)
    assert fetcher.fetch(Resource(source=http_server(handler)), "$") == b"ok"
    assert len(calls) == 3
    assert sleeps == [0.1, 0.2]


def test_http_4xx_is_not_retried(http_server: Server) -> None:
    calls: list[int] = []

    def handler(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        calls.append(1)
        return 404, b""

    fetcher, _ = quick_fetcher()
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.fetch(Resource(source=http_server(handler) + "/missing.ign"), "$")
    assert len(calls) == 1


def test_unreachable_url_gives_up_after_bounded_attempts() -> None:
    fetcher, sleeps = quick_fetcher(attempts=3)
    with pytest.raises(FetchError, match=r"unreachable after 3 attempt"):
        fetcher.fetch(Resource(source="http://127.0.0.1:9/none.ign"), "$")
    assert sleeps == [0.1, 0.2]


def test_merge_child_values_win_and_lists_merge_by_key(http_server: Server) -> None:
    child = {
        "ignition": {"version": "3.0.0"},
        "storage": {
            "files": [
                {"path": "/etc/a", "mode": 384},
                {"path": "/etc/c", "contents": {"source": "data:,c"}},
            ]
        },
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["key-2"]}]},
    }
    body = json.dumps(child).encode()
    url = http_server(lambda _r: (200, body))
    parent = config_of(
        {
            "ignition": {
                "version": "3.4.0",
                "config": {"merge": [{"source": url, "verification": {"hash": sha512(body)}}]},
            },
            "storage": {
                "files": [{"path": "/etc/a", "mode": 420, "contents": {"source": "data:,a"}}]
            },
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["key-1"]}]},
        }
    )
    merged = resolve(parent, Fetcher(), Report())
    files = {f.path: f for f in merged.storage.files}
    assert files["/etc/a"].mode == 384
    assert files["/etc/a"].contents.source == "data:,a"  # unset in the child: parent's stays
    assert "/etc/c" in files
    assert merged.passwd.users[0].ssh_authorized_keys == ("key-1", "key-2")
    assert merged.ignition.config.merge == ()


def test_replace_swaps_the_whole_config() -> None:
    child = '{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/r"}]}}'
    import urllib.parse

    parent = config_of(
        {
            "ignition": {
                "version": "3.4.0",
                "config": {"replace": {"source": "data:," + urllib.parse.quote(child)}},
            },
            "storage": {"files": [{"path": "/etc/original"}]},
        }
    )
    resolved = resolve(parent, Fetcher(), Report())
    assert [f.path for f in resolved.storage.files] == ["/etc/r"]


def test_invalid_referenced_config_is_an_error_naming_its_source() -> None:
    parent = config_of(
        {"ignition": {"version": "3.4.0", "config": {"merge": [{"source": "data:,%7B%7D"}]}}}
    )
    with pytest.raises(ConfigInvalidError, match=r"config from data:.*ignition.version"):
        resolve(parent, Fetcher(), Report())


def test_a_gzip_bomb_in_contents_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    monkeypatch.setattr("wellcar.ignition.fetch.MAX_SIZE", 1 << 20)
    bomb = gzip.compress(bytes(16 << 20))  # 16 KiB that decompress to 16 MiB
    source = "data:;base64," + base64.b64encode(bomb).decode()
    with pytest.raises(FetchError, match="decompress to more than 1048576 bytes"):
        Fetcher().fetch(Resource(source=source, compression="gzip"), "$")
    two_members = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    source = "data:;base64," + base64.b64encode(two_members).decode()
    assert Fetcher().fetch(Resource(source=source, compression="gzip"), "$") == b"a\nb\n"
    truncated = "data:;base64," + base64.b64encode(gzip.compress(b"x" * 100)[:-10]).decode()
    with pytest.raises(FetchError, match="not valid gzip"):
        Fetcher().fetch(Resource(source=truncated, compression="gzip"), "$")


def test_a_dripping_server_cannot_hold_first_boot() -> None:
    import time

    from ..netfetch.hostile_server import HostileServer, drip

    server = HostileServer(behaviours={"config.ign": drip(0.3, total=10_000)})
    try:
        fetcher = Fetcher(attempts=1, header_timeout_s=5, total_timeout_s=1.5)
        started = time.monotonic()
        with pytest.raises(FetchError, match="not complete in time"):
            fetcher.fetch(Resource(source=f"{server.url}/config.ign"), "$")
        assert time.monotonic() - started < 1.5 + 5  # the deadline, plus one read at most
    finally:
        server.close()


def test_base64_data_url_with_line_breaks_is_accepted() -> None:
    import base64

    body = bytes(range(256)) * 2
    wrapped = base64.encodebytes(body).decode()  # 76 columns, "\n" after each line
    assert "\n" in wrapped.strip()
    assert Fetcher().fetch(Resource(source="data:;base64," + wrapped), "$") == body
    escaped = wrapped.replace("\n", "%0D%0A")  # as a URL-encoded CRLF
    assert Fetcher().fetch(Resource(source="data:;base64," + escaped), "$") == body
    config = config_of({"ignition": {"version": "3.4.0"}, "storage": {"files": [
        {"path": "/a", "contents": {"source": "data:;base64," + wrapped}}]}})  # fmt: skip
    assert config.storage.files[0].path == "/a"  # valid: the validator decodes it too


def test_no_proxy_hosts_are_fetched_directly(http_server: Server) -> None:
    via_proxy: list[str] = []

    def proxy(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        via_proxy.append(request.path)  # a proxied request carries the absolute URL
        return 200, b"from the proxy"

    origin = http_server(lambda request: (200, b"from the origin"))
    proxy_url = http_server(proxy)
    resource = Resource(source=f"{origin}/config.ign")
    proxied = Fetcher(attempts=1, proxies={"http": proxy_url})
    assert proxied.fetch(resource, "$") == b"from the proxy"
    assert via_proxy == [f"{origin}/config.ign"]
    for no_proxy in ("127.0.0.1", "example.com,127.0.0.1", "*"):
        direct = Fetcher(attempts=1, proxies={"http": proxy_url, "no": no_proxy})
        assert direct.fetch(resource, "$") == b"from the origin", no_proxy
    other = Fetcher(attempts=1, proxies={"http": proxy_url, "no": "example.com"})
    assert other.fetch(resource, "$") == b"from the proxy"
    assert len(via_proxy) == 2


def test_no_proxy_from_the_config_is_honoured(http_server: Server) -> None:
    origin = http_server(lambda request: (200, b"direct"))
    proxy_url = http_server(lambda request: (200, b"proxied"))
    config = config_of({"ignition": {"version": "3.4.0", "proxy": {
        "httpProxy": proxy_url, "noProxy": ["localhost", "127.0.0.1"]}}})  # fmt: skip
    fetcher = Fetcher(attempts=1)
    fetcher.configure(config.ignition)
    assert fetcher.fetch(Resource(source=f"{origin}/x"), "$") == b"direct"
