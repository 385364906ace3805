"""`wellcar demo`: the real demo (cli/demo_node.py: build, boot and update a node in QEMU),
or with --simulated the update server on embedded defaults with a simulated fleet."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from wellcar.cli.api_client import ApiClient, ApiClientError
from wellcar.fleetsim import NodePhase, SimulatedNode
from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.api.models import (
    AppCreate,
    ChannelCreate,
    ChannelUpdate,
    FlatcarActionInput,
    GroupCreate,
    PackageCreate,
)

console = Console()
FIRST_VERSION = "4459.2.0"
DEMO_APP_NAME = "Wellcar (demo)"


class DemoError(Exception):
    """The demo could not start or talk to its server."""


@dataclass
class DemoServer:
    base_url: str
    token: str
    process: subprocess.Popen[bytes]


def start_server(data_dir: Path, host: str, port: int) -> DemoServer:
    token = os.environ.get("WELLCAR_ADMIN_TOKEN") or "demo-admin-token"
    env = {**os.environ, "WELLCAR_ADMIN_TOKEN": token}
    cmd = [
        sys.executable,
        "-m",
        "wellcar.cli.main",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the server exited with code {proc.returncode}; is port {port} free?")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return DemoServer(url, token, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise DemoError("the server did not become healthy within 60 s")


def next_version(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


def publish(api: ApiClient, app_id: str, channel_id: str, version: str) -> None:
    fake = f"demo payload {version}".encode()  # no real payload yet: digests of a stand-in
    pkg = api.create_package(
        app_id,
        PackageCreate(
            type=1,
            version=version,
            arch=1,
            url=f"http://127.0.0.1:8000/payloads/{version}/",
            filename="wellcar_production_update.gz",
            size="480000000",
            hash=base64.b64encode(hashlib.sha1(fake).digest()).decode(),
            flatcar_action=FlatcarActionInput(
                sha256=base64.b64encode(hashlib.sha256(fake).digest()).decode()
            ),
            channels_blacklist=[],
        ),
    )
    api.update_channel(app_id, channel_id, ChannelUpdate(package_id=pkg.id))


def seed(api: ApiClient) -> tuple[str, str]:
    if any(app.name == DEMO_APP_NAME for app in api.list_apps()):
        raise DemoError("this data dir already holds the demo; remove it or pick another")
    app = api.create_app(AppCreate(id=FLATCAR_APP_ID, name=DEMO_APP_NAME, description="demo fleet"))
    channel = api.create_channel(app.id, ChannelCreate(name="stable", color="#1f9d55", arch=1))
    publish(api, app.id, channel.id, FIRST_VERSION)
    api.create_group(
        app.id,
        GroupCreate(
            name="Stable",
            track="stable",
            channel_id=channel.id,
            description="demo",
            policy_updates_enabled=True,
            policy_safe_mode=True,
            policy_office_hours=False,
            policy_timezone="UTC",
            policy_period_interval="1 minutes",
            policy_max_updates_per_period=8,
            policy_update_timeout="5 minutes",
        ),
    )
    return app.id, channel.id


def fleet_table(nodes: list[SimulatedNode], channel_version: str, elapsed: float) -> Table:
    table = Table(title=f"demo fleet: channel stable at {channel_version} ({elapsed:.0f} s)")
    table.add_column("version")
    table.add_column("nodes", justify="right")
    for version, count in sorted(Counter(n.version for n in nodes).items()):
        table.add_row(version, str(count))
    phases = Counter(n.phase for n in nodes)
    table.add_section()
    for phase in NodePhase:
        table.add_row(f"[dim]{phase.value}[/dim]", str(phases.get(phase, 0)))
    return table


def demo(
    simulated: Annotated[
        bool,
        typer.Option(
            "--simulated",
            help="Only the server with a simulated 40-node fleet (seconds, no root, no builds)",
        ),
    ] = False,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps builds, server data, release tree, node")
    ] = Path("var/demo"),
    port: Annotated[int, typer.Option(help="Port of the demo's server (127.0.0.1)")] = 8000,
    mirror_port: Annotated[
        int, typer.Option(help="Port of the release tree's HTTP server (127.0.0.1)")
    ] = 8080,
    ssh_port: Annotated[int, typer.Option(help="127.0.0.1 port forwarded to the node's ssh")] = (
        2222
    ),
    ci: Annotated[
        bool,
        typer.Option(
            "--ci",
            envvar="WELLCAR_DEMO_CI",
            help="Bounded: exit (0) once the node runs N+1 instead of running until Ctrl-C",
        ),
    ] = False,
    build_n: Annotated[
        Path | None, typer.Option(help="Use this `wellcar build` output as N (no build)")
    ] = None,
    build_n1: Annotated[
        Path | None, typer.Option(help="Use this `wellcar build` output as N+1 (no build)")
    ] = None,
    dev_keys_dir: Annotated[
        Path | None,
        typer.Option(help="The development key set the builds trust [default: the build's]"),
    ] = None,
    memory: Annotated[int, typer.Option(help="The node's memory in MiB")] = 2048,
    cpus: Annotated[int, typer.Option(help="The node's virtual CPUs")] = 2,
    boot_timeout: Annotated[float, typer.Option(help="Seconds for a boot (TCG is slow)")] = 900.0,
    update_timeout: Annotated[
        float, typer.Option(help="Seconds for N+1 to be downloaded, installed and booted")
    ] = 1800.0,
    nodes: Annotated[int, typer.Option(min=1, max=2000, help="--simulated: simulated nodes")] = 40,
    release_every: Annotated[
        float, typer.Option(help="--simulated: seconds between new versions")
    ] = 60.0,
    duration: Annotated[
        float, typer.Option(help="--simulated: stop after this many seconds (0: run)")
    ] = 0.0,
) -> None:
    """Build the OS, boot a node from it in QEMU and watch it update itself to the next
    build through `wellcar serve` (needs root and ~15 GB; 15-25 min cold, minutes warm).
    --simulated: the server with a simulated fleet instead."""
    if not simulated:
        from wellcar.cli.demo_node import DemoOptions, run_demo
        from wellcar.image.settings import default_dev_keys_dir

        options = DemoOptions(
            work=data_dir.resolve(), port=port, mirror_port=mirror_port, ssh_port=ssh_port,
            ci=ci, build_n=build_n.resolve() if build_n else None,
            build_n1=build_n1.resolve() if build_n1 else None,
            dev_keys_dir=(dev_keys_dir or default_dev_keys_dir()).expanduser().resolve(),
            memory_mib=memory, cpus=cpus, boot_timeout=boot_timeout,
            update_timeout=update_timeout,
        )  # fmt: skip
        raise typer.Exit(run_demo(options))
    simulated_demo(data_dir, port, nodes, release_every, duration)


def simulated_demo(
    data_dir: Path, port: int, nodes: int, release_every: float, duration: float
) -> None:
    """Run the update server on SQLite with a simulated fleet that keeps updating."""
    try:
        server = start_server(data_dir, "127.0.0.1", port)
    except DemoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    try:
        api = ApiClient(server.base_url, server.token)
        app_id, channel_id = seed(api)
        console.print(f"server: {server.base_url}  (REST docs: {server.base_url}/docs)")
        console.print(f"admin token: {server.token}  (export WELLCAR_TOKEN=… for `wellcar api`)")
        rng = random.Random(7)
        fleet = [
            SimulatedNode(f"demo-{i:04d}", FIRST_VERSION, failure_rate=0.05, rng=random.Random(i))
            for i in range(nodes)
        ]
        channel_version, started, last_release = FIRST_VERSION, time.monotonic(), time.monotonic()
        omaha_url = f"{server.base_url}/v1/update/"
        with httpx.Client() as http, Live(console=console, refresh_per_second=2) as live:
            while duration <= 0 or time.monotonic() - started < duration:
                if time.monotonic() - last_release > release_every:
                    channel_version = next_version(channel_version)
                    publish(api, app_id, channel_id, channel_version)
                    last_release = time.monotonic()
                for node in rng.sample(fleet, k=max(1, len(fleet) // 4)):
                    node.step(http, omaha_url)
                live.update(fleet_table(fleet, channel_version, time.monotonic() - started))
                time.sleep(0.5)
    except (DemoError, ApiClientError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
