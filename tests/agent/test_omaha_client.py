"""The Omaha client against real HTTP on 127.0.0.1: request shapes, answers,
hostile servers, and one round against the Wellcar update server itself."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.loopback_ports import free_port
from wellcar.agent.config import AgentConfig
from wellcar.agent.errors import (
    OmahaExchangeError,
    OmahaHTTPError,
    ServerUnreachable,
    UpdatesDisabledError,
)
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.omaha_client import (
    InstallSource,
    NoUpdate,
    OmahaClient,
    UpdateOffer,
    check_event,
)
from wellcar.agent.status_store import AgentStatus
from wellcar.omaha import (
    FLATCAR_APP_ID,
    Action,
    AppResponse,
    ErrorFlag,
    Manifest,
    Package,
    Request,
    Response,
    UpdateCheckResponse,
    parse_request,
    render_response,
)

MACHINE_ID = "9ce7c0e2b5a14c1f8e2e6f8f1d3a2b4c"
BOOT_ID = "b3c0e5f2-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
SHA_B64 = base64.b64encode(hashlib.sha256(b"payload").digest()).decode()


# --- a loopback Omaha server -------------------------------------------------------------

Route = Callable[["Handler", bytes], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.seen.append((self.path, dict(self.headers), body))
        route = self.server.routes.get(self.path)
        if route is None:
            reply(self, 404, b"not found", "text/plain")
        else:
            route(self, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up on hostile bodies are the point of several tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def start(self) -> None:
        # A short poll interval keeps shutdown() (and so every test) fast.
        threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def reply(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str = "text/xml",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def xml(resp: Response) -> Route:
    body = render_response(resp)
    return lambda h, _: reply(h, 200, body)


def raw(
    body: bytes,
    status: int = 200,
    content_type: str = "text/xml",
    headers: dict[str, str] | None = None,
) -> Route:
    return lambda h, _: reply(h, status, body, content_type, headers)


def redirect(status: int, location: str) -> Route:
    return raw(b"", status, headers={"Location": location})


def noupdate(poll: int | None = None, appid: str = FLATCAR_APP_ID) -> Response:
    uc = UpdateCheckResponse(status="noupdate", poll_interval=poll)
    app = AppResponse(appid=appid, ping_status="ok", event_statuses=["ok"], updatecheck=uc)
    return Response(apps=[app])


def offer(
    version: str = "2.0.0",
    urls: tuple[str, ...] = ("http://127.0.0.1:9/2.0.0/",),
    name: str = "wellcar_update.gz",
    size: int = 1000,
    sha256: str | None = SHA_B64,
    *,
    app_status: str = "ok",
    uc_status: str = "ok",
    appid: str = FLATCAR_APP_ID,
    **action: Any,
) -> Response:
    manifest = Manifest(
        version=version,
        packages=[Package(name=name, size=size, hash="c2hhMQ==")],
        actions=[Action(event="postinstall", sha256=sha256, **action)],
    )
    uc = UpdateCheckResponse(status=uc_status, urls=list(urls), manifests=[manifest])
    app = AppResponse(appid=appid, status=app_status, ping_status="ok", updatecheck=uc)
    return Response(apps=[app])


def make_client(
    url: str, http: httpx.Client, *, production: bool = True, **cfg: Any
) -> OmahaClient:
    settings: dict[str, Any] = {
        "server": url,
        "default_server": url if production else "https://prod.example/v1/update/",
        "version": "1.0.0",
        "group": "stable",
        "machine_alias": "rack-1",
        "http_timeout": dt.timedelta(seconds=5),
        **cfg,
    }
    config = AgentConfig(**settings)
    identity = NodeIdentity(
        version=config.version,
        board="amd64-usr",
        machine_id=MACHINE_ID,
        boot_id=BOOT_ID,
        oem_id="qemu",
        oem_version="0.1",
        arch="x86_64",
    )
    return OmahaClient(config, identity, http)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def client(server: LoopbackServer, http: httpx.Client) -> OmahaClient:
    return make_client(server.url("/v1/update/"), http)


def last_request(server: LoopbackServer) -> Request:
    return parse_request(server.seen[-1][2], server.seen[-1][1].get("Content-Type"))


CHECKED = AgentStatus(has_checked_in=True, aleph_version="0.5.0", current_version="1.0.0")


# --- request shapes ---------------------------------------------------------------------


def test_update_check_request_is_update_engine_shaped(
    server: LoopbackServer, client: OmahaClient
) -> None:
    server.routes["/v1/update/"] = xml(noupdate())
    client.check_for_update(CHECKED)
    path, headers, _ = server.seen[-1]
    assert path == "/v1/update/"
    assert headers["Content-Type"] == "text/xml"
    req = last_request(server)
    assert (req.protocol, req.installsource, req.ismachine) == ("3.0", "scheduler", 1)
    assert req.version is not None and req.version.startswith("wellcar-agent-")
    assert req.updaterversion == req.version
    assert req.os is not None
    assert (req.os.platform, req.os.version, req.os.sp) == ("CoreOS", "Chateau", "1.0.0_x86_64")
    (app,) = req.apps
    assert app.appid == FLATCAR_APP_ID
    assert (app.version, app.track, app.board) == ("1.0.0", "stable", "amd64-usr")
    assert app.bootid == "{" + BOOT_ID + "}"
    assert app.machineid == MACHINE_ID
    assert (app.machinealias, app.oem, app.oemversion) == ("rack-1", "qemu", "0.1")
    assert app.alephversion == "0.5.0"
    assert app.lang == "en-US" and app.hardware_class == ""
    assert app.delta_okay is False
    assert app.ping is not None and app.ping.active == 1
    assert app.updatecheck is not None
    assert len(app.events) == 1
    ev = app.events[0]
    assert (ev.eventtype, ev.eventresult, ev.previousversion, ev.errorcode) == (3, 2, "", None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (AgentStatus(), (3, 2, "0.0.0.0", None)),  # first-ever check
        (AgentStatus(has_checked_in=True), (3, 2, "", None)),
        (AgentStatus(has_checked_in=True, previous_version="0.9.0"), (3, 2, "0.9.0", None)),
        (AgentStatus(previous_version="0.9.0"), (3, 2, "0.9.0", None)),
        (AgentStatus(has_checked_in=True, previous_version="1.0.0"), (3, 0, None, 44)),  # rollback
    ],
)
def test_check_event_previousversion_semantics(
    server: LoopbackServer,
    client: OmahaClient,
    status: AgentStatus,
    expected: tuple[int, int, str | None, int | None],
) -> None:
    ev = check_event(status, running_version="1.0.0")
    assert (ev.eventtype, ev.eventresult, ev.previousversion, ev.errorcode) == expected
    server.routes["/v1/update/"] = xml(noupdate())
    client.check_for_update(status)
    (sent,) = last_request(server).apps[0].events
    assert (sent.eventtype, sent.eventresult, sent.previousversion, sent.errorcode) == expected


def test_on_demand_install_source(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(noupdate())
    client.check_for_update(CHECKED, install_source=InstallSource.ON_DEMAND)
    assert last_request(server).installsource == "ondemandupdate"


def test_ping_only(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(noupdate())
    client.ping(CHECKED)
    (app,) = last_request(server).apps
    assert app.ping is not None and app.ping.active == 1
    assert app.updatecheck is None and app.events == []


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda c, s: c.report_download_started(s), (13, 1, None)),
        (lambda c, s: c.report_download_finished(s), (14, 1, None)),
        (lambda c, s: c.report_installed(s), (3, 1, None)),
        (lambda c, s: c.report_error(s, 10), (3, 0, 10)),
        (lambda c, s: c.report_error(s, 11, resumed=True), (3, 0, 11 | ErrorFlag.RESUMED)),
    ],
)
def test_event_only_requests(
    server: LoopbackServer,
    client: OmahaClient,
    send: Callable[[OmahaClient, AgentStatus], object],
    expected: tuple[int, int, int | None],
) -> None:
    server.routes["/v1/update/"] = xml(Response(apps=[AppResponse(appid=FLATCAR_APP_ID)]))
    send(client, CHECKED)
    (app,) = last_request(server).apps
    assert app.ping is None and app.updatecheck is None
    (ev,) = app.events
    assert (ev.eventtype, ev.eventresult, ev.errorcode) == expected


def test_error_code_flags_for_a_non_production_server(
    server: LoopbackServer, http: httpx.Client
) -> None:
    client = make_client(server.url("/v1/update/"), http, production=False)
    server.routes["/v1/update/"] = xml(Response(apps=[AppResponse(appid=FLATCAR_APP_ID)]))
    sent = client.report_error(CHECKED, 34)
    assert sent == 268435490  # 0x10000022, what self-hosted Nebraska users see
    assert last_request(server).apps[0].events[0].errorcode == 268435490


def test_disabled_server_cannot_make_a_client(http: httpx.Client) -> None:
    with pytest.raises(UpdatesDisabledError):
        OmahaClient(AgentConfig(server=None), NodeIdentity("1.0.0", "b", MACHINE_ID, BOOT_ID), http)


# --- answers ------------------------------------------------------------------------------


def test_noupdate_with_poll_interval(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(noupdate(poll=3600))
    assert client.check_for_update(CHECKED) == NoUpdate(poll_interval=dt.timedelta(hours=1))
    server.routes["/v1/update/"] = xml(noupdate())
    assert client.check_for_update(CHECKED) == NoUpdate(poll_interval=None)


def test_offer_is_parsed(server: LoopbackServer, client: OmahaClient) -> None:
    resp = offer(
        urls=("https://a.example/2.0.0/", "http://127.0.0.1:9/mirror"),
        size=480_000_000,
        is_delta_payload=True,
        disable_payload_backoff=True,
        max_failure_count_per_url=3,
    )
    resp.apps[0].updatecheck.poll_interval = 600  # type: ignore[union-attr]
    server.routes["/v1/update/"] = xml(resp)
    result = client.check_for_update(CHECKED)
    assert result == UpdateOffer(
        version="2.0.0",
        urls=(
            "https://a.example/2.0.0/wellcar_update.gz",
            "http://127.0.0.1:9/mirror/wellcar_update.gz",
        ),
        size=480_000_000,
        sha256_b64=SHA_B64,
        package_name="wellcar_update.gz",
        is_delta=True,
        disable_backoff=True,
        max_failures_per_url=3,
        poll_interval=dt.timedelta(minutes=10),
    )
    assert isinstance(result, UpdateOffer)
    assert result.sha256_hex == hashlib.sha256(b"payload").hexdigest()
    assert result.response_body == render_response(resp)


def test_offer_defaults(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(offer())
    result = client.check_for_update(CHECKED)
    assert isinstance(result, UpdateOffer)
    assert (result.is_delta, result.disable_backoff, result.max_failures_per_url) == (
        False,
        False,
        10,
    )


def test_app_id_match_ignores_braces_and_case(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(noupdate(appid=FLATCAR_APP_ID.strip("{}").upper()))
    assert isinstance(client.check_for_update(CHECKED), NoUpdate)


def test_redirects_are_followed_with_the_same_post(
    server: LoopbackServer, client: OmahaClient
) -> None:
    server.routes["/v1/update/"] = redirect(302, "/moved")
    server.routes["/moved"] = redirect(307, server.url("/final/"))
    server.routes["/final/"] = xml(noupdate())
    assert isinstance(client.check_for_update(CHECKED), NoUpdate)
    assert [p for p, _, _ in server.seen] == ["/v1/update/", "/moved", "/final/"]
    assert server.seen[0][2] == server.seen[2][2]  # the same request body, POSTed again


# --- hostile and broken servers ------------------------------------------------------------


HOSTILE: dict[str, tuple[Route, str]] = {
    "wrong app id": (xml(noupdate(appid="{00000000-0000-0000-0000-000000000000}")), "no <app>"),
    "no apps": (xml(Response()), "no <app>"),
    "app refused": (xml(offer(app_status="error-unknownApplication")), "refused"),
    "throttled": (xml(offer(uc_status="error-maxUpdatesPerPeriodLimitReached")), "status"),
    "no updatecheck": (xml(Response(apps=[AppResponse(appid=FLATCAR_APP_ID)])), "updatecheck"),
    "missing sha256": (xml(offer(sha256=None)), "sha256"),
    "sha256 not base64": (xml(offer(sha256="not base64!")), "sha256"),
    "sha1-sized sha256": (xml(offer(sha256=base64.b64encode(b"x" * 20).decode())), "sha256"),
    "size zero": (xml(offer(size=0)), "size"),
    "no urls": (xml(offer(urls=())), "urls"),
    "file url": (xml(offer(urls=("file:///etc/",))), "not an http"),
    "package path": (xml(offer(name="../../etc/shadow")), "plain file name"),
    "older version": (xml(offer(version="0.9.0")), "not newer"),
    "same version": (xml(offer(version="1.0.0")), "not newer"),
    "bad version": (xml(offer(version="latest")), "semantic version"),
    "garbage": (raw(b"\x00\x01garbage"), "invalid Omaha response"),
    "html": (raw(b"<html><body>proxy login</body></html>", content_type="text/html"), "invalid"),
    "empty": (raw(b""), "invalid Omaha response"),
    "truncated xml": (raw(render_response(noupdate())[:-20]), "invalid Omaha response"),
    "entity bomb": (
        raw(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><response>&a;</response>'),
        "invalid Omaha response",
    ),
    "gzip": (raw(render_response(noupdate()), headers={"Content-Encoding": "gzip"}), "compressed"),
    "huge declared": (raw(b"x" * (1024 * 1024 + 1)), "exceeds"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_answers_are_error_34(
    server: LoopbackServer, client: OmahaClient, case: str
) -> None:
    route, message = HOSTILE[case]
    server.routes["/v1/update/"] = route
    with pytest.raises(OmahaExchangeError, match=message) as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == 34
    assert not isinstance(info.value, ServerUnreachable | OmahaHTTPError)


def test_throttling_keeps_the_server_status(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = xml(offer(uc_status="error-maxConcurrentUpdatesLimitReached"))
    with pytest.raises(OmahaExchangeError) as info:
        client.check_for_update(CHECKED)
    assert info.value.server_status == "error-maxConcurrentUpdatesLimitReached"


def endless(h: BaseHTTPRequestHandler, body: bytes) -> None:
    """A body that never ends (no Content-Length, streamed until the client hangs up)."""
    h.send_response(200)
    h.send_header("Content-Type", "text/xml")
    h.send_header("Connection", "close")
    h.end_headers()
    chunk = b"<response>" + b"x" * 65536
    try:
        for _ in range(100_000):
            h.wfile.write(chunk)
    except OSError:
        pass  # the client gave up, as it should


def test_endless_body_is_cut_off(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = endless
    with pytest.raises(OmahaExchangeError, match="exceeds") as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == 34


def test_small_cap_is_configurable(server: LoopbackServer, http: httpx.Client) -> None:
    small = make_client(server.url("/v1/update/"), http)
    small.max_response_bytes = 100
    server.routes["/v1/update/"] = xml(offer())
    with pytest.raises(OmahaExchangeError, match="exceeds"):
        small.check_for_update(CHECKED)


def test_redirect_loop_is_capped(server: LoopbackServer, client: OmahaClient) -> None:
    server.routes["/v1/update/"] = redirect(302, "/v1/update/")
    with pytest.raises(OmahaExchangeError, match="more than 5 redirects") as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == 34
    assert len(server.seen) == 6  # the request and five redirects followed, no more


def test_five_redirects_are_fine(server: LoopbackServer, client: OmahaClient) -> None:
    for i in range(1, 4):
        server.routes[f"/{i}"] = redirect(308, f"/{i + 1}")
    server.routes["/v1/update/"] = redirect(301, "/1")
    server.routes["/4"] = redirect(303, "/v1/final")  # the fifth redirect
    server.routes["/v1/final"] = xml(noupdate())
    assert isinstance(client.check_for_update(CHECKED), NoUpdate)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "non-http"),
        ("http://[::1", "unusable redirect target"),
        ("http://exa mple.test/", "unusable redirect target"),
        ("https:///no-host", "unusable redirect target"),
    ],
)
def test_bad_redirect_targets_are_refused(
    server: LoopbackServer, client: OmahaClient, location: str, message: str
) -> None:
    server.routes["/v1/update/"] = redirect(302, location)
    with pytest.raises(OmahaExchangeError, match=message) as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == 34


@pytest.mark.parametrize(("status", "code"), [(500, 2500), (503, 2503), (404, 2404), (400, 2400)])
def test_http_errors_are_2000_plus_status(
    server: LoopbackServer, client: OmahaClient, status: int, code: int
) -> None:
    server.routes["/v1/update/"] = raw(b"oops", status, content_type="text/plain")
    with pytest.raises(OmahaHTTPError) as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == code and info.value.status == status
    assert info.value.is_server_error is (status >= 500)


def test_unreachable_server(http: httpx.Client) -> None:
    port = free_port()  # nobody listens
    client = make_client(f"http://127.0.0.1:{port}/v1/update/", http)  # nobody listens
    with pytest.raises(ServerUnreachable) as info:
        client.check_for_update(CHECKED)
    assert info.value.error_code == 2


def test_silent_server_times_out_as_unreachable(server: LoopbackServer, http: httpx.Client) -> None:
    gate = threading.Event()

    def silent(h: Handler, body: bytes) -> None:
        gate.wait(5)

    server.routes["/v1/update/"] = silent
    client = make_client(server.url("/v1/update/"), http, http_timeout=dt.timedelta(seconds=0.3))
    try:
        with pytest.raises(ServerUnreachable):
            client.check_for_update(CHECKED)
    finally:
        gate.set()


# --- TLS: no downgrade ------------------------------------------------------------------------


@dataclass
class Tls:
    server_ctx: ssl.SSLContext
    client_ctx: ssl.SSLContext
    paths: list[Path] = field(default_factory=list)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (d / "cert.pem").write_bytes(cert_pem)
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    return Tls(server_ctx, client_ctx)


def test_https_to_http_redirect_is_refused(server: LoopbackServer, tls: Tls) -> None:
    secure = LoopbackServer(tls.server_ctx)
    secure.start()
    try:
        server.routes["/v1/update/"] = xml(noupdate())  # the plain-http target
        secure.routes["/v1/update/"] = redirect(302, server.url("/v1/update/"))
        secure.routes["/ok/"] = xml(noupdate())
        with httpx.Client(verify=tls.client_ctx) as http:
            client = make_client(secure.url("/v1/update/"), http)
            with pytest.raises(OmahaExchangeError, match="https to http") as info:
                client.check_for_update(CHECKED)
            assert info.value.error_code == 34
            assert server.seen == []  # the downgraded request was never sent
            # https itself works, including a redirect that stays on https.
            secure.routes["/v1/update/"] = redirect(302, "/ok/")
            assert isinstance(client.check_for_update(CHECKED), NoUpdate)
    finally:
        secure.shutdown()
        secure.server_close()


# --- against the Wellcar update server --------------------------------------------------------


def test_against_the_wellcar_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from tests.server.api_support import Fleet
    from wellcar.server.api.app import create_app
    from wellcar.server.settings import ServerSettings

    monkeypatch.setenv("WELLCAR_ADMIN_TOKEN", "admin")
    monkeypatch.setenv("WELLCAR_READ_TOKEN", "reader")
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as tc:
        tc.headers["Authorization"] = "Bearer admin"
        Fleet.build(tc)  # Flatcar app id, stable channel at 2.0.0, group with track "stable"
        client = make_client("http://testserver/v1/update/", tc)
        status = AgentStatus(aleph_version="1.0.0")
        result = client.check_for_update(status)
        assert isinstance(result, UpdateOffer)
        assert result.version == "2.0.0"
        assert result.urls == ("https://example.test/2.0.0/wellcar_update.gz",)
        assert result.size == 1000
        status = status.checked_in(dt.datetime.now(dt.UTC))
        client.report_download_started(status)
        client.report_download_finished(status)
        client.report_installed(status)
        client.ping(status)
        # After the reboot into 2.0.0: 3/2 with previousversion, and nothing newer.
        rebooted = replace(client.identity, version="2.0.0")
        client2 = OmahaClient(replace(client.config, version="2.0.0"), rebooted, tc)
        after = replace(status, previous_version="1.0.0", current_version="2.0.0")
        assert client2.check_for_update(after) == NoUpdate(poll_interval=None)
