"""`wellcar vm` through Typer's CliRunner: user mistakes and the KVM probe."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from wellcar.cli.vm_commands import vm_app


def invoke(*args: str) -> Result:
    return CliRunner().invoke(vm_app, list(args), env={"COLUMNS": "200"})


def test_run_with_a_missing_image_is_one_error_line(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "nope.img"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: disk image {tmp_path}/nope.img does not exist"
    ]


def test_run_with_a_missing_config_is_one_error_line(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    result = invoke("run", str(image), "--config", str(tmp_path / "ign.json"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: config file")


def test_run_with_a_bad_port_is_one_error_line(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    result = invoke("run", str(image), "--ssh-port", "99999")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: ssh port 99999 is not a TCP port (1-65535)"


def test_run_with_an_update_server_off_loopback_is_one_error_line(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    result = invoke("run", str(image), "--update-server", "http://10.0.0.1:8000/")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: 'http://10.0.0.1:8000/': give http://127.0.0.1:PORT/... "
        "(the guest reaches only loopback)"
    )


def test_run_knows_two_firmwares(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    result = invoke("run", str(image), "--firmware", "coreboot")
    assert result.exit_code == 2
    assert "'coreboot' is not one of 'uefi', 'bios'" in " ".join(result.stderr.split())


@pytest.mark.slow
def test_probe_kvm_prints_a_verdict() -> None:
    result = invoke("probe-kvm", "--timeout", "5")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("kvm: ")


@pytest.mark.slow
def test_sigterm_powers_the_vm_down(boot_disk: Path, tmp_path: Path) -> None:
    """QEMU runs in its own session; a SIGTERM to `wellcar vm run` must not leave it."""
    import signal
    import subprocess
    import sys
    import time

    log = tmp_path / "serial.log"
    command = [sys.executable, "-m", "wellcar.cli.main", "vm", "run", str(boot_disk),
               "--accel", "tcg", "--serial-log", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    started = process.stdout.readline()
    assert started.startswith("VM started (pid "), started
    qemu = int(started.split("pid ")[1].split(",")[0])
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{qemu}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"QEMU (pid {qemu}) still runs after SIGTERM")
