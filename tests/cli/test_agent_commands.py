"""`wellcar agent ...`: status with and without a running agent, the commands that need one,
one-line errors, and `wellcar agent run` as a real process on a simulated node."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.agent.test_control import (
    NEW_VERSION,
    Node,
    OmahaStub,
    SignedPayload,
    running,
    wait_until,
)
from tests.agent.test_control import payload as payload  # the shared fixture
from tests.tiny_layout import TINY
from wellcar.agent.config import load_config
from wellcar.agent.state import UpdateState
from wellcar.agent.status_store import AgentStatus, StatusStore
from wellcar.cli.main import app
from wellcar.disk import Slot, create_disk_image
from wellcar.logline import parse_logfmt
from wellcar.payload.signing import load_trusted_keys

UPDATE_ENGINE_KEYS = ["LAST_CHECKED_TIME", "PROGRESS", "CURRENT_OP", "NEW_VERSION", "NEW_SIZE"]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """`agent run` installs its logfmt handler on the root logger: put things back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def omaha() -> Iterator[OmahaStub]:
    srv = OmahaStub()
    threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True).start()
    yield srv
    srv.gate.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def root(omaha: OmahaStub, payload: SignedPayload) -> Iterator[Path]:
    """A node's root (short: the control socket lives under it) with its update.conf, its
    payload key and, next to it, its disk image ``node.img``."""
    top = Path(tempfile.mkdtemp(prefix="wc-", dir="/tmp"))
    node_root = top / "root"
    (node_root / "etc/wellcar").mkdir(parents=True)
    (node_root / "keys").mkdir()
    shutil.copy(payload.public_key, node_root / "keys" / "update.pub")
    write_conf(node_root, f"SERVER={omaha.url('/v1/update/')}")
    create_disk_image(top / "node.img", TINY, seed="cli-tests")
    yield node_root
    shutil.rmtree(top, ignore_errors=True)


def write_conf(root: Path, *extra: str) -> None:
    lines = [
        "GROUP=stable",
        "WELLCAR_RELEASE_VERSION=1.0.0",
        "WELLCAR_RELEASE_BOARD=amd64-usr",
        "REBOOT_STRATEGY=off",
        "HEALTH_UNITS=",
        "CHECK_INITIAL_DELAY=1h",
        "CHECK_FUZZ=0",
        "PAYLOAD_KEY_DIR=/keys",
        *extra,
    ]
    (root / "etc/wellcar/update.conf").write_text("\n".join(lines) + "\n")


def image_of(root: Path) -> Path:
    return root.parent / "node.img"


def node_of(root: Path) -> Node:
    return Node(image_of(root), load_config(root), load_trusted_keys([root / "keys"]))


def agent(*args: str) -> Result:
    return CliRunner().invoke(app, ["agent", *args], env={"COLUMNS": "200"})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != " ")


# ------------------------------------------------------------------ without an agent


def test_status_without_an_agent_reads_the_status_file_and_the_slot_table(root: Path) -> None:
    text = ok(agent("status", "--root", str(root), "--disk-image", str(image_of(root))))
    lines = text.splitlines()
    assert [line.split("=")[0] for line in lines[:5]] == UPDATE_ENGINE_KEYS
    values = key_values(text)
    assert values["LAST_CHECKED_TIME"] == "0"
    assert values["PROGRESS"] == "0.000000"
    assert values["CURRENT_OP"] == "UPDATE_STATUS_IDLE"
    assert values["NEW_VERSION"] == "0.0.0"
    assert values["CURRENT_VERSION"] == "1.0.0"
    assert values["DAEMON"].startswith("not running")
    slot_rows = [line for line in lines if "USR-" in line]
    assert len(slot_rows) == 2
    assert "good" in slot_rows[0] and "empty" in slot_rows[1]


def test_status_shows_what_the_saved_status_says(root: Path) -> None:
    saved = AgentStatus(
        state=UpdateState.UPDATED_NEED_REBOOT,
        current_version="1.0.0",
        new_version=NEW_VERSION,
        new_payload_size=4000,
        downloaded_bytes=1000,
        last_error_code=2,
        last_error_message="update server unreachable:\nConnection refused",
    )
    StatusStore(load_config(root).status_path).save(saved)
    values = key_values(ok(agent("status", "--root", str(root))))
    assert values["CURRENT_OP"] == "UPDATE_STATUS_UPDATED_NEED_REBOOT"
    assert (values["NEW_VERSION"], values["NEW_SIZE"]) == (NEW_VERSION, "4000")
    assert values["PROGRESS"] == "0.250000"
    assert values["LAST_ERROR_CODE"] == "2"
    assert values["LAST_ERROR"] == "update server unreachable: Connection refused"


def test_status_json_without_an_agent(root: Path) -> None:
    result = agent("status", "--root", str(root), "--disk-image", str(image_of(root)), "--json")
    document = json.loads(ok(result))
    assert document["daemon"] == {"running": False}
    assert document["status"]["state"] == "UPDATE_STATUS_IDLE"
    assert document["config"]["group"] == "stable"
    assert [(s["slot"], s["state"]) for s in document["slots"]] == [("A", "good"), ("B", "empty")]
    assert document["slots_error"] is None and document["boot"] is None


@pytest.mark.parametrize("command", ["check", "update", "reset", "rollback"])
def test_commands_that_need_the_agent_say_it_is_not_running(root: Path, command: str) -> None:
    line = one_error_line(agent(command, "--root", str(root)))
    assert line.startswith("error: no agent is running (nothing listens on ")
    assert "start `wellcar agent run`" in line


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("REBOOT_STRATEGY=sometimes", "/etc/wellcar/update.conf:9: REBOOT_STRATEGY: 'sometimes'"),
        ("CHECK_INTERVAL=soon", "/etc/wellcar/update.conf:9: CHECK_INTERVAL: not a duration"),
    ],
)
def test_a_broken_update_conf_is_one_line(root: Path, conf: str, message: str) -> None:
    write_conf(root, conf)
    for command in ("check", "update", "reset"):
        line = one_error_line(agent(command, "--root", str(root)))
        assert line.startswith(f"error: {message}"), line
    # status still shows the saved status (from the default STATE_DIR), and why.
    values = key_values(ok(agent("status", "--root", str(root))))
    assert values["CURRENT_OP"] == "UPDATE_STATUS_IDLE"
    assert values["CONFIG_ERROR"].startswith(message)


def test_run_mistakes_are_one_line(root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.img"
    line = one_error_line(agent("run", "--root", str(root), "--disk-image", str(missing)))
    assert line == f"error: --disk-image {missing}: no such file"


# ---------------------------------------------------------------------- with an agent


def test_the_commands_talk_to_a_running_agent(
    root: Path, omaha: OmahaStub, payload: SignedPayload
) -> None:
    node = node_of(root)
    with running(node):
        status = key_values(ok(agent("status", "--root", str(root))))
        assert status["DAEMON"] == f"running pid={os.getpid()}"
        assert status["BOOT"] == "already-good"
        document = json.loads(ok(agent("status", "--root", str(root), "--json")))
        assert document["daemon"]["running"] and len(document["slots"]) == 2

        assert ok(agent("check", "--root", str(root))).strip() == "no update available"
        omaha.payload = payload
        text = ok(agent("update", "--root", str(root)))
        assert text.strip() == f"update {NEW_VERSION} installed: reboot needed"
        status = key_values(ok(agent("status", "--root", str(root))))
        assert status["CURRENT_OP"] == "UPDATE_STATUS_UPDATED_NEED_REBOOT"
        assert status["NEW_VERSION"] == NEW_VERSION

        assert ok(agent("reset", "--root", str(root))).strip() == "status reset: UPDATE_STATUS_IDLE"
        line = one_error_line(agent("rollback", "--root", str(root)))
        assert line.startswith("error: slot B is bad")


def test_a_failed_check_exits_1_with_the_error(root: Path) -> None:
    write_conf(root, "SERVER=http://127.0.0.1:9/v1/update/")
    with running(node_of(root)):
        line = one_error_line(agent("check", "--root", str(root)))
        assert line.startswith("error: update check failed (code 2): ")


# ------------------------------------------------------------------ `agent run` for real


def start_agent(root: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "wellcar", "agent", "run", "--root", str(root),
            "--disk-image", str(image_of(root))]  # fmt: skip
    with log.open("ab") as stderr:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_for_socket(process: subprocess.Popen[bytes], root: Path, log: Path) -> None:
    sock = load_config(root).state_dir / "agent.sock"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        return sock.exists()

    wait_until(up, timeout=30)


def test_run_serves_the_commands_and_stops_cleanly_on_sigterm(root: Path, tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    process = start_agent(root, log)
    try:
        wait_for_socket(process, root, log)
        status = key_values(ok(agent("status", "--root", str(root))))
        assert status["DAEMON"] == f"running pid={process.pid}"
        assert ok(agent("check", "--root", str(root))).strip() == "no update available"
        line = one_error_line(
            agent("run", "--root", str(root), "--disk-image", str(image_of(root)))
        )
        assert f"another agent (pid {process.pid}) is running" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [parse_logfmt(line) for line in log.read_text().splitlines()]
    started = [line for line in lines if line["msg"] == "agent started"]
    assert started and started[0]["logger"] == "wellcar.agent.run"
    assert started[0]["level"] == "info" and started[0]["pid"] == str(process.pid)
    assert {"msg": "stopping after the current step", "signal": "SIGTERM"}.items() <= next(
        line for line in lines if line["msg"] == "stopping after the current step"
    ).items()
    assert any(line["msg"] == "agent stopped" for line in lines)
    assert not (load_config(root).state_dir / "agent.sock").exists()


def test_run_on_a_bad_update_rolls_back_by_rebooting_the_simulated_node(
    root: Path, tmp_path: Path, omaha: OmahaStub, payload: SignedPayload
) -> None:
    node = node_of(root)
    omaha.payload = payload
    with running(node) as service:  # install 2.0.0 into slot B...
        assert service.agent.check().value == "updated-need-reboot"
    node.backend().reboot()  # ...and ask for the reboot into it
    # 2.0.0 is unhealthy: the agent marks it bad and reboots, which ends `agent run`.
    write_conf(root, f"SERVER={omaha.url('/v1/update/')}", "HEALTH_COMMAND=false",
               "BOOT_ASSESSMENT_GRACE=0")  # fmt: skip
    omaha.payload = None
    log = tmp_path / "agent.log"
    first = start_agent(root, log)
    assert first.wait(timeout=30) == 0, log.read_text()
    assert 'msg="simulated power-on" image=' in log.read_text()
    assert 'msg="agent stopped: the node is rebooting"' in log.read_text()
    # The next start is the machine coming back: on slot A, which reports the rollback.
    second = start_agent(root, log)
    try:
        wait_for_socket(second, root, log)
        wait_until(lambda: "BOOT=" in ok(agent("status", "--root", str(root))))
        status = key_values(ok(agent("status", "--root", str(root))))
        assert status["BOOT"] == "rolled-back-from"
        assert status["ROLLED_BACK_VERSION"] == NEW_VERSION
        table = node.backend().slot_table()
        assert table.active is Slot.A and table.slot(Slot.B).state.value == "bad"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()


def test_checks_are_refused_when_updates_are_disabled(root: Path) -> None:
    write_conf(root, "SERVER=disabled")
    with running(node_of(root)):
        for command in ("check", "update"):
            line = one_error_line(agent(command, "--root", str(root)))
            assert line == "error: updates are disabled: update.conf sets no usable SERVER"
        assert key_values(ok(agent("status", "--root", str(root))))["SERVER"] == "disabled"
