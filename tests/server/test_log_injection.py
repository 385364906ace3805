"""Nobody who can reach the server can write a line into its log.

A real `wellcar serve` process (SQLite, debug level, logfmt and JSON) gets hostile values in
every Omaha attribute it logs, in the X-Forwarded-For header, in FleetLock ids and groups,
in REST paths, query strings and bodies. After each request the test reads what was added
to the log: exactly the expected number of lines, each one parses back (strictly) and holds
the value that was sent, cut with a marker when it is longer than a field may be.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from wellcar.cli.api_client import ApiClient
from wellcar.logline import MAX_VALUE_CHARS, clip, parse_logfmt
from wellcar.server.api.models import AppCreate, GroupCreate

from .server_processes import serve_processes

TOKEN = "log-admin"
APP_ID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
FORGED = (
    'ts=2026-12-05T00:00:00.000Z level=error logger=wellcar.auth msg="admin login from 6.6.6.6"'
)

# Values an XML attribute can carry (as character references where XML would normalise).
OMAHA_HOSTILE = {
    "newline": "abc\n" + FORGED,
    "carriage-return": "abc\r" + FORGED,
    "tab-quote-backslash": 'a\t"b\\" c=d',
    "c1-csi": "x\u009b31mred\u0085next",
    "separators-bidi": "abc\u2028" + FORGED + "\u202edcba\u200b",
    "long": "m" * 2000,
}
# JSON bodies can carry anything, NUL and ESC included.
JSON_HOSTILE = {
    **OMAHA_HOSTILE,
    "nul-esc": "a\x00b\x1b[2J\x1b]0;owned\x07",
    "64KiB": "z" * 65536,
}
LINE_BOUND = 24 * 1024  # no request may make a line longer than this


def attribute(value: str) -> str:
    """An XML attribute value that keeps every character (no attribute normalisation)."""
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return out.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")


def omaha_request(
    appid: str, machineid: str, track: str = "stable", version: str = "1.0.0"
) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<request protocol="3.0" version="update_engine-0.4.10" updaterversion="0.4.10">'
        '<os version="Chateau" platform="CoreOS" sp="1.0.0_x86_64" arch="x64"></os>'
        f'<app appid="{attribute(appid)}" version="{attribute(version)}" '
        f'track="{attribute(track)}" board="amd64-usr" machineid="{attribute(machineid)}">'
        "<updatecheck></updatecheck></app></request>"
    ).encode()


@dataclass
class LoggedServer:
    url: str
    log: Path
    fmt: str
    http: httpx.Client

    def lines_after(
        self, request: Callable[[], httpx.Response]
    ) -> tuple[httpx.Response, list[dict[str, str]]]:
        """Send one request; return its response and the log lines it added, parsed."""
        start = self.log.stat().st_size
        response = request()
        raw = self.log.read_bytes()[start:].decode("utf-8")
        assert raw == "" or raw.endswith("\n"), "a line was left unterminated"
        lines = raw.splitlines()
        for line in lines:
            assert len(line) < LINE_BOUND, f"a {len(line)}-character line"
        return response, [self.parse(line) for line in lines]

    def parse(self, line: str) -> dict[str, str]:
        if self.fmt == "logfmt":
            return parse_logfmt(line)
        obj = json.loads(line)
        assert isinstance(obj, dict)
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}

    def omaha(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> Callable[[], httpx.Response]:
        return lambda: self.http.post(
            f"{self.url}/v1/update/",
            content=body,
            headers={"content-type": "text/xml", **(headers or {})},
        )


@pytest.fixture(scope="module", params=["logfmt", "json"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoggedServer]:
    fmt: str = request.param
    work = tmp_path_factory.mktemp(f"log-{fmt}")
    log = work / "server.log"
    env = {"WELLCAR_ADMIN_TOKEN": TOKEN, "WELLCAR_READ_TOKEN": "log-reader"}
    args = ("--log-level", "debug", "--log-format", fmt)
    with (
        serve_processes(work / "data", 1, extra_env=env, log_args=args, log_file=log) as (url,),
        httpx.Client(timeout=30) as http,
    ):
        api = ApiClient(url, TOKEN)
        app = api.create_app(AppCreate(id=APP_ID, name="logs", description="")).id
        api.create_group(app, GroupCreate(name="stable", track="stable"))
        yield LoggedServer(url, log, fmt, http)


def only(lines: list[dict[str, str]], msg: str) -> dict[str, str]:
    assert [line["msg"] for line in lines] == [msg], lines
    return lines[0]


# ----------------------------------------------------------------------------- Omaha


@pytest.mark.parametrize("value", OMAHA_HOSTILE.values(), ids=OMAHA_HOSTILE.keys())
def test_hostile_app_and_machine_ids_stay_inside_their_fields(
    server: LoggedServer, value: str
) -> None:
    response, lines = server.lines_after(server.omaha(omaha_request(value, value + "!")))
    assert response.status_code == 200
    line = only(lines, "unknown application")
    assert line["app_id"] == clip(value) and line["machine_id"] == clip(value + "!")
    assert line["level"] == "info" and line["logger"] == "wellcar.server.omaha"


@pytest.mark.parametrize("value", OMAHA_HOSTILE.values(), ids=OMAHA_HOSTILE.keys())
def test_a_hostile_track_and_version_stay_inside_their_fields(
    server: LoggedServer, value: str
) -> None:
    _, lines = server.lines_after(server.omaha(omaha_request(APP_ID, "m1", track=value)))
    assert only(lines, "unknown track")["track"] == clip(value)
    _, lines = server.lines_after(server.omaha(omaha_request(APP_ID, value, version=value)))
    line = only(lines, "refused check-in: invalid version")
    assert line["version"] == clip(value) and line["machine_id"] == clip(value)


def test_a_long_value_is_cut_with_a_marker_not_dropped(server: LoggedServer) -> None:
    value = "q" * 2000
    _, lines = server.lines_after(server.omaha(omaha_request(value, "m")))
    logged = only(lines, "unknown application")["app_id"]
    assert logged.startswith("q" * MAX_VALUE_CHARS) and logged.endswith("[truncated: 2000 chars]")


@pytest.mark.parametrize(
    "body",
    [
        b'<request protocol="3.0"><app appid="a\x1b[31m\x00"/></request>',
        b'<request protocol="3.0"><app appid="\xff\xfe\nlevel=error"/></request>',
        b"level=error msg=forged\n" * 100,
        omaha_request("x" * 3000, "m"),  # over the attribute limit
    ],
    ids=["esc-nul", "invalid-utf8", "garbage", "over-limit"],
)
def test_refused_bodies_log_one_line_each(server: LoggedServer, body: bytes) -> None:
    response, lines = server.lines_after(server.omaha(body))
    assert response.status_code == 400
    line = only(lines, "omaha request refused")
    assert line["level"] == "warning" and line["reason"] and line["error"]


def test_a_hostile_forwarded_for_header_stays_in_client_ip(server: LoggedServer) -> None:
    # obs-text is legal in a header: these bytes arrive as C1 controls (latin-1).
    header = b"6.6.6.6\x9b31m\x85" + FORGED.encode()
    response, lines = server.lines_after(
        lambda: server.http.post(
            f"{server.url}/v1/update/",
            content=b"not xml",
            headers=[(b"content-type", b"text/xml"), (b"x-forwarded-for", header)],
        )
    )
    assert response.status_code == 400
    assert only(lines, "omaha request refused")["client_ip"] == header.decode("latin-1")[:64]


# ------------------------------------------------------------------------- FleetLock


def fleetlock(
    server: LoggedServer, node_id: str, group: str = "default"
) -> Callable[[], httpx.Response]:
    body = {"client_params": {"id": node_id, "group": group}}
    return lambda: server.http.post(
        f"{server.url}/v1/pre-reboot", json=body, headers={"fleet-lock-protocol": "true"}
    )


@pytest.mark.parametrize("value", JSON_HOSTILE.values(), ids=JSON_HOSTILE.keys())
def test_hostile_fleetlock_ids_and_groups_log_one_parsable_line(
    server: LoggedServer, value: str
) -> None:
    response, lines = server.lines_after(fleetlock(server, value))
    assert len(lines) == 1, lines
    if response.status_code == 200:  # accepted ids are logged as sent
        assert lines[0]["msg"] == "fleetlock pre-reboot"
        assert lines[0]["node_id"] == clip(value)
        server.http.post(  # give the slot back for the next value
            f"{server.url}/v1/steady-state",
            json={"client_params": {"id": value, "group": "default"}},
            headers={"fleet-lock-protocol": "true"},
        )
    else:
        assert lines[0]["msg"] == "fleetlock refused" and lines[0]["operation"] == "pre-reboot"
    _, lines = server.lines_after(fleetlock(server, "n1", group=value))
    assert only(lines, "fleetlock refused")["operation"] == "pre-reboot"


# ------------------------------------------------------------------------------ REST


@pytest.mark.parametrize("value", JSON_HOSTILE.values(), ids=JSON_HOSTILE.keys())
def test_hostile_rest_paths_queries_and_bodies_log_nothing_and_answer_json(
    server: LoggedServer, value: str
) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    requests = [
        lambda: server.http.get(
            f"{server.url}/api/apps/{quote(value[:4000], safe='')}", headers=auth
        ),
        lambda: server.http.get(
            f"{server.url}/api/apps", params={"page": value[:4000]}, headers=auth
        ),
        lambda: server.http.post(
            f"{server.url}/api/apps", json={"name": value, "id": value}, headers=auth
        ),
        lambda: server.http.post(f"{server.url}/api/apps", content=value.encode(), headers=auth),
    ]
    for send in requests:
        response, lines = server.lines_after(send)
        assert lines == []
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"].startswith("application/json")
        assert "\n" not in "".join(response.headers.values())
    assert server.http.get(f"{server.url}/health").status_code == 200
