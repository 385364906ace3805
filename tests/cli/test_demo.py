"""`wellcar demo` runs the server, seeds it through the REST API and rolls a fleet forward."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.loopback_ports import free_port
from wellcar.server.db import schema as t
from wellcar.server.db.engine import create_db_engine, sqlite_url
from wellcar.server.fleet_codes import ActivityClass


@pytest.mark.slow
def test_demo_rolls_out(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wellcar.cli.main",
            "demo",
            "--simulated",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            "--nodes",
            "12",
            "--duration",
            "25",
            "--release-every",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    engine = create_db_engine(sqlite_url(data_dir))
    with engine.connect() as c:
        instances = c.execute(select(func.count()).select_from(t.instance)).scalar_one()
        versions = {r[0] for r in c.execute(select(t.instance_application.c.version))}
        packages = c.execute(select(func.count()).select_from(t.package)).scalar_one()
        classes = {r[0] for r in c.execute(select(t.activity.c["class"]))}
    engine.dispose()
    assert instances == 12
    assert packages >= 3  # new versions were published while it ran
    assert len(versions) >= 2  # and some nodes moved on
    assert ActivityClass.ROLLOUT_STARTED in classes
    assert ActivityClass.CHANNEL_PACKAGE_UPDATED in classes
