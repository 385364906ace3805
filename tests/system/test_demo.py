"""`wellcar demo`, the README's main job, in its bounded mode (--ci) on the session's builds:
one real node boots N in QEMU, checks in with `wellcar serve`, updates itself to N+1 from
a TUF-signed release tree and comes back on N+1 (one boot + one update reboot). Bad input
ends with one line before anything long starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wellcar.image.dev_keys import ensure_dev_keys
from wellcar.vm import free_loopback_port

from ..release.builds import make_build
from .builds import OsBuilds
from .test_update_in_vm import skip_unless_vm_tools


def run_demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wellcar.cli.main", "demo", "--ci", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def ports() -> list[str]:
    return ["--port", str(free_loopback_port()), "--mirror-port", str(free_loopback_port()),
            "--ssh-port", str(free_loopback_port())]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_demo_updates_a_real_node(os_builds: OsBuilds, tmp_path: Path) -> None:
    skip_unless_vm_tools()
    n, n1 = os_builds.n, os_builds.n1
    done = run_demo(
        "--data-dir", str(tmp_path / "demo"), *ports(),
        "--build-n", str(n.output), "--build-n1", str(n1.output),
        "--dev-keys-dir", str(os_builds.dev_keys.directory),
        timeout=3300,
    )  # fmt: skip
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"demo ok: the node updated {n.version} -> {n1.version}" in done.stdout
    assert "checked in: instance" in done.stdout
    # Each state was shown as it happened: the node's and the server's.
    seen = {op for op in ("DOWNLOADING", "VERIFYING", "FINALIZING", "UPDATED_NEED_REBOOT")
            if f"CURRENT_OP=UPDATE_STATUS_{op}" in done.stdout}  # fmt: skip
    assert seen, done.stdout[-3000:]
    assert "not answering (rebooting?)" in done.stdout
    assert f"server: {n1.version} complete" in done.stdout
    assert "ssh -i" in done.stdout and "admin token" in done.stdout


def fake_build(path: Path, payload: bytes) -> Path:
    path.mkdir(parents=True)
    (path / "version.txt").write_text("WELLCAR_VERSION=4893.0.1\n")
    (path / "packages.txt").write_text("bash=5.2\n")
    (path / "update.payload").write_bytes(payload)
    (path / "SHA256SUMS").write_text(
        "".join(f"{'0' * 64}  {name}\n" for name in ("update.payload", "version.txt"))
    )
    return path


def test_demo_refuses_a_changed_build_in_one_line(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "n1", b"not what was built")
    done = run_demo("--data-dir", str(tmp_path / "demo"), *ports(), "--build-n1", str(build),
                    timeout=120)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match its SHA256SUMS" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_demo_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_demo("--data-dir", str(tmp_path / "demo"), "--port", str(port),
                        "--mirror-port", str(free_loopback_port()), timeout=120)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: port {port} (--port) is in use on 127.0.0.1: is another demo "
                     "running? stop it or pick another port"], done.stderr  # fmt: skip


def test_demo_stops_at_a_corrupt_release_tree_in_one_line(tmp_path: Path) -> None:
    keys = ensure_dev_keys(tmp_path / "dev-keys").keys
    (keys.release_tree / "metadata" / "timestamp.json").write_text("{not json")
    n = make_build(tmp_path / "n", "4893.0.0")
    n1 = make_build(tmp_path / "n1", "4893.0.1")
    done = run_demo(
        "--data-dir", str(tmp_path / "demo"), *ports(), "--build-n", str(n),
        "--build-n1", str(n1), "--dev-keys-dir", str(keys.directory), timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "timestamp.json is not TUF metadata" in lines[0], done.stderr
    assert "boot a node" not in done.stdout  # stopped before the VM
