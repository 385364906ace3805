"""The lean daemon entry point: `python -m wellcar.agent run`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tests.agent.test_control import wait_until
from tests.cli.test_agent_commands import TINY
from wellcar.agent.status_store import AgentStatus, StatusStore
from wellcar.disk import create_disk_image
from wellcar.logline import parse_logfmt


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wellcar.agent", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_status(root: Path, predicate: Callable[[AgentStatus], bool]) -> AgentStatus:
    store = StatusStore(root / "var/lib/wellcar/status.json")
    wait_until(lambda: store.path.exists() and predicate(store.load()), timeout=30)
    return store.load()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wellcar.agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_disk_image_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "etc/wellcar").mkdir(parents=True)
    keys = tmp_path / "usr/share/wellcar/update-payload-keys"
    keys.mkdir(parents=True)
    (tmp_path / "etc/wellcar/update.conf").write_text("SERVER=http://127.0.0.1:9/v1/update/\n")
    result = _run(
        "run", "--root", str(tmp_path), "--disk-image", str(tmp_path / "nope.img"),
        "--allow-unsigned",
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: --disk-image {tmp_path / 'nope.img'}: no such file"
    assert "Traceback" not in result.stderr


def test_without_signing_keys_the_daemon_stays_up_blocked(tmp_path: Path) -> None:
    """No keys: no exit (systemd would restart it for ever); blocked, saved, retried."""
    (tmp_path / "etc/wellcar").mkdir(parents=True)
    (tmp_path / "etc/wellcar/update.conf").write_text("SERVER=http://127.0.0.1:9/v1/update/\n")
    process = _start("run", "--root", str(tmp_path), "--disk-image", str(tmp_path / "x.img"))
    try:
        status = _wait_for_status(tmp_path, lambda s: s.blocked_reason is not None)
        assert status.blocked_reason is not None
        assert status.blocked_reason.startswith("no payload signing keys in ")
        assert status.next_check_time is not None
        first_retry = status.next_check_time
        time.sleep(1.0)
        assert process.poll() is None  # still up
        # SIGHUP: try again now (still no keys): the next retry backs off further.
        process.send_signal(signal.SIGHUP)
        again = _wait_for_status(
            tmp_path, lambda s: s.next_check_time is not None and s.next_check_time > first_retry
        )
        assert again.next_check_time is not None and again.blocked_since == status.blocked_since
        assert again.next_check_time - first_retry > timedelta(seconds=20)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    stderr = process.stderr.read() if process.stderr else ""
    blocked = [
        line
        for line in map(parse_logfmt, stderr.splitlines())
        if line["msg"].startswith("agent blocked")
    ]
    assert blocked and blocked[0]["reason"].startswith("no payload signing keys")
    assert blocked[0]["level"] == "error" and "retry_at" in blocked[0]
    assert "Traceback" not in stderr


def test_a_bad_update_conf_blocks_and_a_fixed_one_starts_on_sighup(tmp_path: Path) -> None:
    conf = tmp_path / "etc/wellcar/update.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("SERVER=disabled\nREBOOT_STRATEGY=sometimes\n")
    image = tmp_path / "node.img"
    create_disk_image(image, TINY, seed="runner-tests")
    process = _start("run", "--root", str(tmp_path), "--disk-image", str(image))
    try:
        status = _wait_for_status(tmp_path, lambda s: s.blocked_reason is not None)
        assert status.blocked_reason is not None and "REBOOT_STRATEGY" in status.blocked_reason
        conf.write_text("SERVER=disabled\nHEALTH_UNITS=\nCHECK_INITIAL_DELAY=1h\n")
        process.send_signal(signal.SIGHUP)
        # SERVER=disabled needs no payload keys: it runs (assesses boots), idle.
        _wait_for_status(tmp_path, lambda s: s.blocked_reason is None)
        wait_until(lambda: (tmp_path / "var/lib/wellcar/agent.sock").exists(), timeout=30)
        time.sleep(1.0)  # the socket is served just before `run` installs its SIGTERM handler
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_daemon_does_not_load_the_cli_or_server_stack() -> None:
    probe = (
        "import sys; sys.modules.setdefault('httpx._main', None); "
        "import wellcar.agent.runner; "
        "print(sorted(m for m in ('typer', 'rich', 'fastapi', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_an_unreachable_server_backs_off_and_the_agent_stays_up(tmp_path: Path) -> None:
    keys = tmp_path / "usr/share/wellcar/update-payload-keys"
    keys.mkdir(parents=True)
    (tmp_path / "etc/wellcar").mkdir(parents=True)
    (tmp_path / "etc/wellcar/update.conf").write_text(
        "SERVER=http://127.0.0.1:9/v1/update/\nHEALTH_UNITS=\nCHECK_INITIAL_DELAY=0\n"
        "CHECK_INTERVAL=1s\nCHECK_FUZZ=0\nMAX_BACKOFF=1h\n"
    )
    image = tmp_path / "node.img"
    create_disk_image(image, TINY, seed="runner-unreachable")
    process = _start("run", "--root", str(tmp_path), "--disk-image", str(image), "--allow-unsigned")
    try:
        status = _wait_for_status(tmp_path, lambda s: s.consecutive_check_failures >= 3)
        assert status.last_error_code == 2  # update_engine's OMAHA_REQUEST_ERROR
        assert status.last_error_message and "unreachable" in status.last_error_message
        assert status.next_check_time is not None and status.last_check_time is None
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
