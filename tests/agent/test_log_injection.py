# ruff: noqa: F811 - the fixtures of test_control are imported by name
"""A hostile update server cannot write lines into the agent's log.

The agent checks in with a loopback Omaha server that answers with hostile versions, URLs
and error bodies. Every record the agent logs meanwhile is written by both formatters; each
record is exactly one line, every line parses back, and the hostile text is inside a field.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wellcar.agent.status_view import status_lines
from wellcar.logline import JsonFormatter, LogfmtFormatter, parse_logfmt
from wellcar.omaha import UpdateCheckResponse

from .test_control import (  # noqa: F401 - fixtures
    NEW_VERSION,
    OmahaStub,
    SignedPayload,
    ask,
    make_node,
    node,
    omaha,
    payload,
    running,
    short_dir,
)
from .test_control import Node as ControlNode

FORGED = "\u2028ts=2026-12-05T00:00:00.000Z level=error logger=wellcar.auth msg=forged"
HOSTILE = "\u009b31m\u0085" + FORGED + "\u202e"


@dataclass
class Captured:
    records: list[logging.LogRecord] = field(default_factory=list)
    logfmt: io.StringIO = field(default_factory=io.StringIO)
    json: io.StringIO = field(default_factory=io.StringIO)

    def check(self) -> list[dict[str, str]]:
        """Every record is one line in each format; the logfmt lines, parsed."""
        logfmt_lines = self.logfmt.getvalue().splitlines()
        json_lines = self.json.getvalue().splitlines()
        assert len(logfmt_lines) == len(json_lines) == len(self.records) > 0
        for line in json_lines:
            assert isinstance(json.loads(line), dict)
        return [parse_logfmt(line) for line in logfmt_lines]


class _Records(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def captured() -> Iterator[Captured]:
    cap = Captured()
    handlers: list[logging.Handler] = [
        _Records(cap.records),
        logging.StreamHandler(cap.logfmt),
        logging.StreamHandler(cap.json),
    ]
    handlers[1].setFormatter(LogfmtFormatter())
    handlers[2].setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.handlers.extend(handlers)
    try:
        yield cap
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


def test_a_hostile_version_is_logged_inside_one_field(
    node: ControlNode, omaha: OmahaStub, payload: SignedPayload, captured: Captured
) -> None:
    omaha.payload, omaha.version = payload, NEW_VERSION + HOSTILE
    with running(node):
        assert ask(node, "check", wait=15)["result"] == "check-failed"
    lines = captured.check()
    failed = [line for line in lines if line["msg"] == "update check failed"]
    assert len(failed) == 1 and "is not a semantic version" in failed[0]["error"]
    assert r"\x9b31m\x85\u2028ts=" in failed[0]["error"]  # repr()-escaped by the agent
    assert not any(line["logger"] == "wellcar.auth" for line in lines)


class HostileUrls(OmahaStub):
    def answer(self) -> UpdateCheckResponse:
        offer = super().answer()
        offer.urls = [self.url("/payload/" + HOSTILE + "/")]
        return offer


def test_a_hostile_download_url_is_logged_inside_one_field(
    short_dir: Path, payload: SignedPayload, captured: Captured
) -> None:
    srv = HostileUrls()
    threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True).start()
    try:
        srv.payload = payload
        node = make_node(short_dir, srv.url("/v1/update/"), payload)
        with running(node):
            assert ask(node, "update", wait=15)["result"] == "failed"
    finally:
        srv.shutdown()
        srv.server_close()
    lines = captured.check()
    downloads = [line for line in lines if line["msg"] == "update failed"]
    assert len(downloads) == 1, [line["msg"] for line in lines]
    assert "/payload/" in downloads[0]["error"], downloads[0]
    assert all("\n" not in line["msg"] for line in lines)


def test_a_hostile_error_text_cannot_add_status_lines(
    node: ControlNode, omaha: OmahaStub, captured: Captured
) -> None:
    with running(node):
        document = {k: v for k, v in ask(node, "status").items() if k not in ("ok", "command")}
    document["status"]["last_error_message"] = "x\nCURRENT_OP=UPDATE_STATUS_IDLE\x1b[2J\u2028NEW=1"
    document["config_error"] = "bad\rSERVER=http://evil/"
    lines = status_lines(document)
    keys = [line.split("=", 1)[0] for line in lines]
    assert keys.count("CURRENT_OP") == 1 and "NEW" not in keys and keys.count("SERVER") == 1
    assert r"CURRENT_OP=UPDATE_STATUS_IDLE\u001b[2J NEW=1" in "\n".join(lines)
