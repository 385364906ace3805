"""`wellcar api ...` against a real server (uvicorn on a loopback port, real HTTP)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from tests.loopback_ports import free_port
from wellcar.cli.main import app as wellcar_app
from wellcar.server.api.app import create_app
from wellcar.server.db import schema as t
from wellcar.server.settings import ServerSettings

ADMIN = "cli-admin-token"
READER = "cli-read-token"
FLATCAR_ID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


@dataclass
class Served:
    url: str
    engine: Engine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WELLCAR_ADMIN_TOKEN", ADMIN)
        mp.setenv("WELLCAR_READ_TOKEN", READER)
        data_dir: Path = tmp_path_factory.mktemp("server")
        app = create_app(ServerSettings(data_dir=data_dir))
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn took too long to start"
            time.sleep(0.02)
        try:
            yield Served(f"http://127.0.0.1:{port}", app.state.engine)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def run(served: Served, *args: str, token: str | None = ADMIN) -> Result:
    env = {"WELLCAR_SERVER": served.url, "WELLCAR_TOKEN": token or ""}
    return CliRunner().invoke(wellcar_app, ["api", *args], env=env)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def failed(result: Result) -> str:
    """The single error line of a failed command."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_release_workflow(served: Served) -> None:
    app = ok_json(run(served, "apps", "create", "Flatcar", "--id", FLATCAR_ID,
                      "--product-id", "io.flatcar", "--json"))  # fmt: skip
    assert app["id"] == FLATCAR_ID.strip("{}")
    ok_json(run(served, "channels", "create", "io.flatcar", "stable", "--color", "#00f", "--json"))
    for version in ("3815.2.0", "3815.2.1"):
        pkg = ok_json(run(
            served, "packages", "create", "io.flatcar", "--version", version,
            "--url", f"https://dl.example/{version}/", "--filename", "flatcar_update.gz",
            "--size", "465881871", "--hash", "c2hhMQ==", "--sha256", SHA256,
            "--arch", "amd64", "--type", "flatcar", "--json",
        ))  # fmt: skip
        assert pkg["version"] == version and pkg["size"] == "465881871"
        assert pkg["hash"] == "c2hhMQ==" and pkg["flatcar_action"]["sha256"] == SHA256
        assert pkg["arch"] == 1 and pkg["type"] == 1 and pkg["filename"] == "flatcar_update.gz"
    channel = ok_json(
        run(served, "channels", "update", "io.flatcar", "stable", "--package", "3815.2.1", "--json")
    )
    assert channel["package"]["version"] == "3815.2.1"
    group = ok_json(run(
        served, "groups", "create", "io.flatcar", "Production", "--channel", "stable",
        "--track", "stable", "--max-updates", "5", "--period-interval", "1 hours",
        "--no-safe-mode", "--json",
    ))  # fmt: skip
    assert group["channel"]["name"] == "stable" and group["track"] == "stable"
    assert group["policy_max_updates_per_period"] == 5 and group["policy_safe_mode"] is False
    group = ok_json(run(
        served, "groups", "update", "io.flatcar", "production", "--office-hours",
        "--timezone", "Europe/Berlin", "--office-hours-spec", "mon-thu 08:00-16:00", "--json",
    ))  # fmt: skip
    assert group["policy_office_hours"] is True and group["policy_timezone"] == "Europe/Berlin"
    assert group["policy_max_updates_per_period"] == 5  # untouched
    assert group["policy_office_hours_spec"] == "mon-thu 08:00-16:00"

    # tables for people
    listing = run(served, "channels", "list", "io.flatcar")
    assert listing.exit_code == 0 and "stable" in listing.stdout and "3815.2.1" in listing.stdout
    listing = run(served, "groups", "list", FLATCAR_ID)
    assert "Production" in listing.stdout and "5 / 1 hours" in listing.stdout
    listing = run(served, "packages", "list", "io.flatcar")
    assert listing.stdout.index("3815.2.1") < listing.stdout.index("3815.2.0")
    show = run(served, "apps", "show", "io.flatcar")
    assert "io.flatcar" in show.stdout and "Production" in show.stdout
    assert "Flatcar" in run(served, "apps", "list").stdout

    feed = ok_json(run(served, "activity", "list", "--app", "io.flatcar", "--json"))
    assert feed["totalCount"] == 1
    assert feed["activities"][0]["class"] == 6
    assert feed["activities"][0]["version"] == "3815.2.1"
    assert "channel-package-updated" in run(served, "activity", "list").stdout

    # clean up through the CLI as well
    assert "served by channel" in failed(
        run(served, "packages", "delete", "io.flatcar", "3815.2.1")
    )
    assert ok_json(run(served, "packages", "delete", "io.flatcar", "3815.2.0", "--json"))["deleted"]
    ok_json(run(served, "groups", "delete", "io.flatcar", "Production", "--json"))
    ok_json(run(served, "channels", "delete", "io.flatcar", "stable", "--json"))
    ok_json(run(served, "apps", "delete", "io.flatcar", "--json"))
    assert "no application" in failed(run(served, "apps", "show", "io.flatcar"))


def _seed_instances(engine: Engine, app_id: str, group_id: str, count: int) -> None:
    now = datetime.now().replace(microsecond=0)  # the server's clock is the real one here
    with engine.begin() as c:
        for i in range(count):
            c.execute(insert(t.instance).values(
                id=f"node{i:02d}", ip=f"192.0.2.{i}", alias="", oem="", oem_version="",
                aleph_version="", created_ts=now,
            ))  # fmt: skip
            c.execute(insert(t.instance_application).values(
                instance_id=f"node{i:02d}", application_id=app_id, group_id=group_id,
                version="1.0.0" if i % 2 else "2.0.0", status=4 if i % 2 else None,
                last_check_for_updates=now - timedelta(minutes=i), update_in_progress=False,
                created_ts=now,
            ))  # fmt: skip


def test_instances_list_pages_and_filters(served: Served) -> None:
    app = ok_json(run(served, "apps", "create", "Fleet", "--product-id", "io.fleet", "--json"))
    group = ok_json(run(served, "groups", "create", "io.fleet", "all", "--json"))
    _seed_instances(served.engine, app["id"], group["id"], 5)
    page = ok_json(run(served, "instances", "list", "io.fleet", "all", "--perpage", "2",
                       "--page", "2", "--sort", "alias", "--asc", "--json"))  # fmt: skip
    assert page["total"] == 5 and [i["id"] for i in page["instances"]] == ["node02", "node03"]
    done = ok_json(run(served, "instances", "list", "io.fleet", group["id"], "--status",
                       "complete", "--json"))  # fmt: skip
    assert sorted(i["id"] for i in done["instances"]) == ["node01", "node03"]
    assert ok_json(run(served, "instances", "list", "io.fleet", "all", "--version", "2.0.0",
                       "--json"))["total"] == 3  # fmt: skip
    found = ok_json(run(served, "instances", "list", "io.fleet", "all", "--search", "192.0.2.4",
                        "--json"))  # fmt: skip
    assert [i["id"] for i in found["instances"]] == ["node04"]
    table = run(served, "instances", "list", "io.fleet", "all", "--perpage", "2")
    assert table.exit_code == 0 and "instances 1-2 of 5" in table.stdout
    assert "complete" in run(served, "instances", "list", "io.fleet", "all").stdout
    assert "--status" in failed(run(served, "instances", "list", "io.fleet", "all", "--status",
                                     "sleepy"))  # fmt: skip


def test_errors_are_one_line_with_exit_code_1(served: Served) -> None:
    assert "no API token" in failed(run(served, "apps", "list", token=None))
    assert "HTTP 401" in failed(run(served, "apps", "list", token="nope"))
    msg = failed(run(served, "apps", "create", "x", token=READER))
    assert "read-only" in msg and "HTTP 403" in msg
    assert run(served, "apps", "list", "--json", token=READER).exit_code == 0
    assert "HTTP 404" in failed(run(served, "groups", "list", "io.nothing"))
    ok_json(run(served, "apps", "create", "Dup", "--product-id", "io.dup", "--json"))
    assert "HTTP 409" in failed(run(served, "apps", "create", "Dup2", "--product-id", "io.dup"))
    assert "--arch" in failed(run(served, "channels", "create", "io.dup", "c", "--arch", "sparc"))
    assert "sha256" in failed(run(
        served, "packages", "create", "io.dup", "--version", "1.0.0", "--url", "u",
        "--sha256", "not-base64",
    ))  # fmt: skip
    assert "version" in failed(
        run(served, "packages", "create", "io.dup", "--version", "1.0", "--url", "u")
    )
    ok_json(run(served, "channels", "create", "io.dup", "beta", "--json"))
    pkg = ok_json(run(
        served, "packages", "create", "io.dup", "--version", "2.0.0", "--url", "u",
        "--blacklist", "beta", "--type", "other", "--arch", "all", "--json",
    ))  # fmt: skip
    assert len(pkg["channels_blacklist"]) == 1 and pkg["type"] == 4 and pkg["arch"] == 0
    assert "blacklist" in failed(
        run(served, "channels", "update", "io.dup", "beta", "--package", "2.0.0")
    )
    assert "no channel" in failed(run(served, "channels", "update", "io.dup", "nope", "--package",
                                      "1.0.0"))  # fmt: skip
    ok_json(run(served, "channels", "create", "io.dup", "stable", "--json"))
    assert "no package" in failed(
        run(served, "channels", "update", "io.dup", "stable", "--package", "9.9.9")
    )
    port = free_port()
    unreachable = CliRunner().invoke(
        wellcar_app,
        [
            "api",
            "apps",
            "list",
            "--server",
            f"http://127.0.0.1:{port}",
            "--token",
            ADMIN,
        ],
    )
    assert "cannot reach" in failed(unreachable)
    assert "http://" in failed(run(served, "apps", "list", "--server", "ftp://x"))


def test_flags_override_environment(served: Served) -> None:
    result = CliRunner().invoke(
        wellcar_app,
        ["api", "apps", "list", "--json", "--server", served.url, "--token", READER],
        env={"WELLCAR_SERVER": "http://127.0.0.1:1", "WELLCAR_TOKEN": "wrong"},
    )
    assert isinstance(ok_json(result), list)


def test_server_text_reaches_the_terminal_as_text(served: Served) -> None:
    # An application name is whatever an admin typed: Rich markup and C1 controls in it
    # are shown, not interpreted (a stray "[/]" used to be a MarkupError traceback).
    name = "[bold]x[/bold] [/] \u009b31m \u202egnp.exe"
    ok_json(run(served, "apps", "create", name, "--id", "{6f1c0a37-3c3e-4a79-9d55-1c9f4b7e1a10}",
                "--json"))  # fmt: skip
    listing = run(served, "apps", "list")
    assert listing.exit_code == 0, listing.stderr
    assert "[bold]x[/bold] [/]" in listing.stdout
    assert r"\u009b31m" in listing.stdout and r"\u202egnp.exe" in listing.stdout
    assert "\u009b" not in listing.stdout and "\u202e" not in listing.stdout
    # The server's error text quotes what was asked for: escaped on the error line too.
    line = failed(run(served, "apps", "show", "\x1b]0;owned\x07\x1b[2J"))
    assert "\x1b" not in line and "\x07" not in line and "[2J" in line
