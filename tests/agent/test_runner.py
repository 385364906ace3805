"""The lean daemon entry point: `python -m wellcar.agent run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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


def test_without_signing_keys_the_daemon_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "etc/wellcar").mkdir(parents=True)
    (tmp_path / "etc/wellcar/update.conf").write_text("SERVER=http://127.0.0.1:9/v1/update/\n")
    result = _run("run", "--root", str(tmp_path), "--disk-image", str(tmp_path / "x.img"))
    assert result.returncode == 1
    assert "no payload signing keys" in result.stderr
    assert "Traceback" not in result.stderr


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
