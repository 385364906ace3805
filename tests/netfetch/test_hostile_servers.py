"""Every network read a node does ends in time and in bounded memory, whatever the server.

The node's real code (the TUF client the agent's trust gate runs, the payload downloader,
the Omaha client) against a loopback server that sends a gzip bomb, drips one byte at a
time, drips its headers, or says nothing at all. The TUF refresh runs in a child process
whose peak RSS is measured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from wellcar.agent.config import AgentConfig
from wellcar.agent.download import download_payload
from wellcar.agent.errors import DownloadError, ServerUnreachable
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.omaha_client import OmahaClient, UpdateOffer
from wellcar.agent.status_store import AgentStatus
from wellcar.trust.repository import TrustRepository

from .hostile_server import HostileServer, bomb, drip, drip_headers, gzip_bomb, silent

TIMESTAMP = "metadata/timestamp.json"
READ_TIMEOUT = 30.0  # longer than every test: only a deadline can end them in time
DEADLINE = 2.0
RSS_BOUND_KIB = 200 * 1024  # the interpreter with tuf, httpx and cryptography is ~40 MiB

CHILD = """
import json, sys, time
from pathlib import Path
from wellcar.trust.client import TrustedUpdateVerifier
from wellcar.trust.errors import TrustError
from wellcar.trust.fetcher import HttpxFetcher

cache, root, url, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
fetcher = HttpxFetcher(timeout=30.0, deadline_seconds=deadline)
verifier = TrustedUpdateVerifier(Path(cache), Path(root), url, fetcher=fetcher)
started = time.monotonic()
outcome = {"error": None}
try:
    verifier.refresh()
except TrustError as exc:
    outcome = {"error": type(exc).__name__, "message": str(exc)}
outcome["seconds"] = time.monotonic() - started
# VmHWM, not ru_maxrss: getrusage keeps the figure across execve, so it would include
# the (large) pytest process this child was forked from.
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
outcome["maxrss_kib"] = int(hwm.split()[1])
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def shipped_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tuf")
    TrustRepository.initialize(base / "tree", base / "keys", now=datetime.now(UTC))
    root = base / "root.json"
    shutil.copyfile(base / "tree/metadata/1.root.json", root)
    return root


@pytest.fixture
def server() -> Iterator[HostileServer]:
    srv = HostileServer()
    yield srv
    srv.close()


def refresh_in_child(
    shipped_root: Path, url: str, cache: Path, deadline: float = DEADLINE
) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache), str(shipped_root), url, str(deadline)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_gzip_bomb_in_metadata_is_refused_in_bounded_memory(
    server: HostileServer, shipped_root: Path, tmp_path: Path
) -> None:
    gzip_bomb()  # made before the request: making it takes longer than the deadline
    server.behaviours[TIMESTAMP] = bomb  # 1.8 KiB on the wire, 1 GiB decoded
    # A generous deadline: the refusal, not the clock, must end this one.
    result = refresh_in_child(shipped_root, server.url, tmp_path / "cache", deadline=60)
    assert result["error"] == "MetadataUnavailableError", result
    assert "compressed" in str(result["message"]), result
    assert int(str(result["maxrss_kib"])) < RSS_BOUND_KIB, result


@pytest.mark.parametrize(
    "behaviour",
    [drip(0.3), drip_headers(0.3), silent(60)],
    ids=["dripping-body", "dripping-headers", "silent"],
)
def test_slow_metadata_ends_at_the_deadline(
    server: HostileServer, shipped_root: Path, tmp_path: Path, behaviour: object
) -> None:
    server.behaviours[TIMESTAMP] = behaviour  # type: ignore[assignment]
    result = refresh_in_child(shipped_root, server.url, tmp_path / "cache")
    assert result["error"] == "MetadataUnavailableError", result
    assert "not complete after 2 s" in str(result["message"]), result
    # The timer shuts the socket down: no need to wait for the 30 s read timeout.
    assert float(str(result["seconds"])) < DEADLINE + 5, result


def offer_of(url: str, data: bytes) -> UpdateOffer:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return UpdateOffer("2.0.0", (url,), len(data), digest, "update.payload")


@pytest.mark.parametrize("behaviour", [drip(0.3), silent(60)], ids=["dripping", "silent"])
def test_a_slow_payload_download_ends_at_its_deadline_and_keeps_what_it_has(
    server: HostileServer, tmp_path: Path, behaviour: object
) -> None:
    data = bytes(range(256)) * 64
    server.files["p"] = data
    server.behaviours["p"] = behaviour  # type: ignore[assignment]
    started = time.monotonic()
    with httpx.Client(timeout=READ_TIMEOUT) as http, pytest.raises(DownloadError) as info:
        download_payload(offer_of(f"{server.url}/p", data), tmp_path, http,
                         retry_delay=0, deadline_seconds=DEADLINE)  # fmt: skip
    assert time.monotonic() - started < DEADLINE + 5
    assert "not complete after 2 s" in str(info.value)
    assert int(info.value.error_code) == 9


def test_a_compressed_payload_is_refused(server: HostileServer, tmp_path: Path) -> None:
    gzip_bomb()
    server.behaviours["p"] = bomb
    with httpx.Client(timeout=READ_TIMEOUT) as http, pytest.raises(DownloadError) as info:
        download_payload(offer_of(f"{server.url}/p", b"x" * 1827), tmp_path, http, retry_delay=0)
    assert "compressed" in str(info.value)


@pytest.mark.parametrize(
    "behaviour", [drip(0.3), drip_headers(0.3), silent(60)], ids=["body", "headers", "silent"]
)
def test_a_slow_update_server_ends_the_check_in_time(
    server: HostileServer, tmp_path: Path, behaviour: object
) -> None:
    server.behaviours["v1/update/"] = behaviour  # type: ignore[assignment]
    url = f"{server.url}/v1/update/"
    config = AgentConfig(server=url, default_server=url, version="1.0.0", board="amd64-usr",
                         http_timeout=timedelta(seconds=1), root=tmp_path,
                         state_dir=tmp_path / "state")  # fmt: skip
    identity = NodeIdentity("1.0.0", "amd64-usr", "0" * 32, "00000000-0000-4000-8000-000000000000")
    started = time.monotonic()
    with httpx.Client(timeout=READ_TIMEOUT) as http, pytest.raises(ServerUnreachable) as info:
        OmahaClient(config, identity, http).check_for_update(AgentStatus())
    assert time.monotonic() - started < 2 + 5  # EXCHANGE_DEADLINE_FACTOR x HTTP_TIMEOUT
    # Silence ends at the read timeout (1 s); a drip only at the deadline.
    assert "not complete after 2 s" in str(info.value) or "timed out" in str(info.value)
