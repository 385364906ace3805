"""`wellcar demo`: the real thing. Build N, release and publish it, boot a node from it in
QEMU, build N+1, release and publish it, and watch the node update itself and come back.

Everything runs on this machine: `wellcar serve` on SQLite and the release tree (served by
``python -m http.server``) on 127.0.0.1, the node under QEMU reaching both only through
guest forwards (wellcar.vm.host_services). Layout under the work directory (var/demo):

- ``builds/n``, ``builds/n1``: the two builds, reused while their inputs stay the same
  (cli/demo_builds.py);
- ``server/``: the server's data (SQLite, tokens); ``release-tree/``: a copy of the
  development key set's tree with N and N+1 released into it. Both are made anew on each
  run (seconds of work), so a run never meets an earlier run's versions; tokens stay.
- ``node/``: the ssh key for ``core``, the Ignition config, the serial console log;
  ``logs/``: the server's and the mirror's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wellcar.cli.api_client import ApiClient, ApiClientError
from wellcar.cli.demo_builds import (
    HELLO_PATH,
    DemoBuild,
    DemoBuildError,
    build_version,
    check_can_build,
    ensure_build,
    next_patch,
    release_build,
    reusable,
)
from wellcar.ignition.parse import LATEST as IGNITION_LATEST
from wellcar.image import ImageBuildError
from wellcar.image.dev_keys import DevKeys
from wellcar.logline.encode import visible
from wellcar.omaha import FLATCAR_APP_ID
from wellcar.payload.errors import PayloadError
from wellcar.payload.signing import load_signing_key
from wellcar.release.build_dir import REQUIRED, SUMS, sha256_file
from wellcar.release.create import ReleaseInputs
from wellcar.release.errors import ReleaseError
from wellcar.release.publish import publish_release
from wellcar.server.api.models import AppCreate, GroupCreate, InstanceApplication
from wellcar.server.auth import ADMIN_FILE, READ_FILE, Tokens
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.trust.errors import TrustError
from wellcar.trust.keys import Keyring
from wellcar.vm import IGNITION_FW_CFG_NAME, FwCfgEntry, Vm, VmConfig, VmError
from wellcar.vm.host_services import add_update_conf, host_service, update_server_service

T = TypeVar("T")

CHECK_EVERY = 3.0  # seconds between polls of the server and the node
SERVER_START_TIMEOUT = 60.0
SSH_TIMEOUT = 60.0
GUEST_DISK_SIZE = 8 << 30  # larger than the image: ROOT grows into it on first boot
# The node checks in every ~15 s instead of Flatcar's ~1 h, so the demo moves along.
NODE_TIMINGS = {
    "CHECK_INITIAL_DELAY": "10s",
    "CHECK_INTERVAL": "15s",
    "CHECK_FUZZ": "2s",
    "MAX_BACKOFF": "30s",
    "BOOT_ASSESSMENT_GRACE": "10s",
}
BLOCKED_CHECK_POLLS = 10  # ask the agent whether it is blocked every 10th poll


class DemoError(Exception):
    """The demo cannot go on; the message is the one line the user sees."""


@dataclass(frozen=True)
class DemoOptions:
    work: Path
    port: int
    mirror_port: int
    ssh_port: int
    ci: bool
    build_n: Path | None
    build_n1: Path | None
    dev_keys_dir: Path
    memory_mib: int
    cpus: int
    boot_timeout: float
    update_timeout: float


@dataclass
class Services:
    """The processes the demo started (ended in reverse order by close())."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    about: dict[int, tuple[str, Path]] = field(default_factory=dict)  # pid: (what, log)

    def start(self, argv: list[str], log: Path, what: str) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
            )  # fmt: skip
        self.processes.append(process)
        self.about[process.pid] = (what, log)
        return process

    def check(self) -> None:
        """One line when a service the node needs has died (not an endless wait)."""
        for process in self.processes:
            if process.poll() is not None:
                what, log = self.about[process.pid]
                raise DemoError(
                    f"{what} stopped (exit {process.returncode}): {last_line(log)} (log: {log})"
                )

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: connections of a previous run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float,
               services: Services) -> T:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        services.check()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- the update server and the release tree --------------------------------------------------


@dataclass
class Fleet:
    api: ApiClient
    app: str
    group: str
    base_url: str  # where the node finds the release tree (guest side)
    tree: Path
    inputs: ReleaseInputs
    staging: Path

    def release_and_publish(self, build: DemoBuild) -> None:
        version = release_build(self.tree, self.staging, build.output, self.inputs)
        publish_release(self.api, self.tree, version, app=self.app, base_url=self.base_url)

    def instance(self) -> tuple[str, InstanceApplication] | None:
        page = self.api.list_instances(self.app, self.group, perpage=10)
        for item in page.instances:
            if item.application is not None:
                return item.id, item.application
        return None


def status_name(status: int | None) -> str:
    if status is None:
        return "no update yet"
    try:
        return InstanceStatus(status).name.lower().replace("_", " ")
    except ValueError:
        return str(status)


def start_server(options: DemoOptions, services: Services) -> tuple[str, str, str]:
    """`wellcar serve` on SQLite; (base URL, admin token, where the token is)."""
    data = options.work / "server"
    if data.is_dir():
        for entry in data.iterdir():  # a fresh database each run; the tokens stay
            if entry.name not in (ADMIN_FILE, READ_FILE):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    tokens = Tokens.load(data)
    argv = [sys.executable, "-m", "wellcar.cli.main", "serve", "--data-dir", str(data),
            "--port", str(options.port), "--log-level", "warning"]  # fmt: skip
    process = services.start(argv, options.work / "logs" / "server.log", "the server")
    url = f"http://127.0.0.1:{options.port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            log = options.work / "logs" / "server.log"
            raise DemoError(f"the server exited: {last_line(log)} (log: {log})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, tokens.admin.token, tokens.admin.origin
        if time.monotonic() > deadline:
            raise DemoError(f"the server did not answer {url}/health within 60 s")
        time.sleep(0.2)


def start_mirror(options: DemoOptions, tree: Path, services: Services) -> str:
    """The release tree over HTTP on 127.0.0.1 (static files, as on any web server)."""
    argv = [sys.executable, "-m", "http.server", str(options.mirror_port), "--bind", "127.0.0.1",
            "--directory", str(tree)]  # fmt: skip
    services.start(argv, options.work / "logs" / "mirror.log", "the release tree mirror")
    url = f"http://127.0.0.1:{options.mirror_port}/"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        services.check()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}metadata/root.json", timeout=1).status_code == 200:
                return url
        if time.monotonic() > deadline:
            raise DemoError(f"the release tree mirror did not answer {url} within 60 s")
        time.sleep(0.2)


def group_name(channel: str) -> str:
    return channel.capitalize()


def create_group(api: ApiClient, app: str, channel: str) -> str:
    """A group tracking ``channel`` (its server channel must exist: publishing the first
    release makes it)."""
    channel_id = next(c.id for c in api.list_channels(app) if c.name == channel)
    group = api.create_group(
        app,
        GroupCreate(
            name=group_name(channel), track=channel, channel_id=channel_id,
            description="the demo node", policy_updates_enabled=True, policy_safe_mode=False,
            policy_office_hours=False, policy_timezone="UTC", policy_period_interval="1 minute",
            policy_max_updates_per_period=10, policy_update_timeout="60 minutes",
        ),
    ).id  # fmt: skip
    return group


# --- the node ------------------------------------------------------------------------------


@dataclass
class Node:
    vm: Vm
    key: Path
    ssh_port: int

    def ssh(self, command: str) -> str | None:
        """stdout of command as core, or None when the node does not answer (rebooting)."""
        try:
            done = self.vm.ssh(command, user="core", key=self.key, timeout=SSH_TIMEOUT)
        except (subprocess.TimeoutExpired, VmError):
            return None
        return done.stdout if done.returncode == 0 else None

    def update_status(self) -> dict[str, str] | None:
        text = self.ssh("update_engine_client -status")
        if text is None:
            return None
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def agent_status(self) -> dict[str, str]:
        text = self.ssh("wellcar agent status") or ""
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def why(self) -> str:
        """The agent's last error or why it is blocked, for an error line."""
        agent = self.agent_status()
        reason = agent.get("BLOCKED") or agent.get("LAST_ERROR") or agent.get("CONFIG_ERROR")
        return f"agent: {reason}" if reason else "no error reported by the agent"

    def os_version(self) -> str | None:
        text = self.ssh(". /usr/lib/os-release; echo $VERSION_ID")
        return text.strip() if text else None

    def ssh_command(self) -> str:
        return f"ssh -i {self.key} -p {self.ssh_port} core@127.0.0.1"


def ssh_key(node_dir: Path) -> Path:
    key = node_dir / "id_ed25519"
    if not key.is_file():
        node_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "core@wellcar-demo", "-f",
             str(key)], capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise DemoError(f"ssh-keygen failed: {done.stderr.strip()}")
    return key


def write_ignition(path: Path, public_key: str, values: dict[str, str]) -> None:
    document: dict[str, object] = {
        "ignition": {"version": IGNITION_LATEST},
        # core exists in the image (Flatcar's user model): the config adds the key.
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [public_key]}]},
    }
    path.write_text(json.dumps(add_update_conf(document, values), indent=1) + "\n")


def describe_node(status: dict[str, str] | None) -> tuple[str, ...]:
    """The node's update state as shown: the operation, the version on offer and, while
    downloading, the progress in steps of 10 % (a line per step, not per poll)."""
    if status is None:
        return ("not answering (rebooting?)",)
    op = status.get("CURRENT_OP", "?")
    shown = [f"CURRENT_OP={op}", f"NEW_VERSION={status.get('NEW_VERSION', '?')}"]
    if op.endswith("DOWNLOADING"):
        with contextlib.suppress(ValueError):
            shown.append(f"{int(float(status.get('PROGRESS', '0')) * 10) * 10}%")
    return tuple(shown)


# --- showing it ----------------------------------------------------------------------------


class Steps:
    def __init__(self, console: Console, total: int) -> None:
        self.console, self.total, self.index = console, total, 0
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.index += 1
        began = time.monotonic()
        self.console.rule(f"[bold]{self.index}/{self.total}[/] {title}", align="left")
        yield
        self.console.print(f"[green]done[/] in {time.monotonic() - began:.0f} s", highlight=False)

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)

    def node_says(self, text: str) -> None:
        self.console.print(f"  [dim]node:[/] {visible(text)}", highlight=False)


def instance_table(fleet: Fleet) -> Table:
    table = Table(title="the server's view of the node", title_justify="left")
    table.add_column("instance", overflow="fold")
    for column in ("ip", "version", "status", "last check"):
        table.add_column(column)
    found = fleet.instance()
    if found is not None:
        instance_id, app = found
        page = fleet.api.list_instances(fleet.app, fleet.group, perpage=10)
        ip = next((i.ip for i in page.instances if i.id == instance_id), "")
        table.add_row(instance_id, ip, app.version, status_name(app.status),
                      app.last_check_for_updates.strftime("%H:%M:%S"))  # fmt: skip
        history = fleet.api.status_history(fleet.app, fleet.group, instance_id, limit=10)
        if history:
            table.add_section()
            for entry in reversed(history):
                error = f" (error {entry.error_code})" if entry.error_code else ""
                table.add_row("", "", entry.version, status_name(entry.status) + error,
                              entry.created_ts.strftime("%H:%M:%S"))  # fmt: skip
    return table


def build_progress(console: Console, role: str) -> tuple[Progress, Callable[[str, int, int], None]]:
    progress = Progress(
        TextColumn(f"  building {role}: [bold]{{task.description}}"),
        BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console, transient=False,
    )  # fmt: skip
    task = progress.add_task("preflight", total=None)

    def on_step(name: str, index: int, total: int) -> None:
        progress.update(task, description=name, completed=index, total=total)

    return progress, on_step


# --- the run -------------------------------------------------------------------------------


def check_given_build(path: Path, role: str) -> None:
    """A build given on the command line is whole before anything starts: the files a
    release needs match its SHA256SUMS, and it has a disk image to boot."""
    needed = [*REQUIRED, SUMS] + (["disk.img"] if role == "N" else [])
    for name in needed:
        if not (path / name).is_file():
            raise DemoError(f"--build-{role.lower().replace('+', '')} {path}: no {name} (not a "
                            "finished `wellcar build` output)")  # fmt: skip
    listed: dict[str, str] = {}
    for line in (path / SUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name.strip()] = digest
    for name in REQUIRED:
        if listed.get(name) != sha256_file(path / name):
            raise DemoError(f"{path}/{name} does not match its {SUMS}: changed after the build")


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options, self.console = options, console
        self.services = Services()
        self.vm: Vm | None = None
        self.steps = Steps(console, 4)

    def _build(self, role: str, given: Path | None, version: str | None) -> DemoBuild:
        if given is not None:
            check_given_build(given, role)
            return DemoBuild(str(build_version(given)), given, "given")
        keys = DevKeys(self.options.dev_keys_dir)
        parsed = next_patch(version) if version is not None else None
        progress, on_step = build_progress(self.console, role)
        with progress:
            made = ensure_build(self.options.work / "builds", role, parsed, keys, on_step)
            if made.how == "built":
                task = progress.tasks[0]
                progress.update(task.id, description="done", completed=task.total or 1)
            else:
                progress.update(progress.tasks[0].id, visible=False)  # nothing was built
        return made

    def run(self) -> None:
        o = self.options
        for port, what in ((o.port, "--port"), (o.mirror_port, "--mirror-port"),
                           (o.ssh_port, "--ssh-port")):  # fmt: skip
            if not port_free(port):
                raise DemoError(f"port {port} ({what}) is in use on 127.0.0.1: is another demo "
                                "running? stop it or pick another port")  # fmt: skip
        if o.build_n1 is not None:
            check_given_build(o.build_n1, "N+1")  # before a 2-minute boot, not after
        keys = DevKeys(o.dev_keys_dir)
        steps = self.steps

        with steps.step("build N, release it into a TUF-signed tree, publish it"):
            n = self._build("N", o.build_n, None)
            steps.say(f"N = {n.version} in {n.output} ({n.how})")
            if o.build_n1 is None and not reusable(o.work / "builds", "N+1",
                                                   next_patch(n.version), keys):  # fmt: skip
                check_can_build("N+1")  # now, not after a boot
            if not keys.complete():
                raise DemoError(
                    f"no development key set in {keys.directory} (the builds make one; "
                    "give --dev-keys-dir for builds made elsewhere)"
                )
            tree = o.work / "release-tree"
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(keys.release_tree, tree, symlinks=True)
            inputs = ReleaseInputs([load_signing_key(keys.signing_key)],
                                   Keyring.load([keys.tuf_keys_dir]))  # fmt: skip
            url, token, token_origin = start_server(o, self.services)
            steps.say(f"update server {url} (SQLite in {o.work / 'server'})")
            mirror = start_mirror(o, tree, self.services)
            server_svc = update_server_service(url)
            mirror_svc = host_service(mirror)
            api = ApiClient(url, token)
            app = api.create_app(AppCreate(id=FLATCAR_APP_ID, name="Wellcar", description="demo"))
            fleet = Fleet(api, app.id, "", mirror_svc.guest_url, tree, inputs, o.work / "staging")
            fleet.release_and_publish(n)
            channel = build_version(n.output).channel
            fleet.group = create_group(api, app.id, channel)
            steps.say(f"released {n.version} to {channel} in {tree} (served at {mirror}), "
                      f"published to the server's {channel} channel")  # fmt: skip

        with steps.step(f"boot a node from {n.version} in QEMU; it checks in"):
            node_dir = o.work / "node"
            key = ssh_key(node_dir)
            values = {"SERVER": server_svc.guest_url, "GROUP": channel,
                      "RELEASE_REPOSITORY": mirror_svc.guest_url, **NODE_TIMINGS}  # fmt: skip
            config = node_dir / "config.ign"
            write_ignition(config, key.with_suffix(".pub").read_text().strip(), values)
            steps.say(f"Ignition config {config}: ssh key for core, update.conf SERVER="
                      f"{server_svc.guest_url} (guestfwd to {url})")  # fmt: skip
            self.vm = Vm(VmConfig(
                image=n.output / "disk.img", memory_mib=o.memory_mib, cpus=o.cpus,
                ssh_port=o.ssh_port, guest_forwards=(server_svc.forward, mirror_svc.forward),
                fw_cfg=(FwCfgEntry(IGNITION_FW_CFG_NAME, config.resolve()),),
                serial_log=(node_dir / "serial.log").resolve(), disk_size=GUEST_DISK_SIZE,
            ))  # fmt: skip
            self.vm.start()
            node = Node(self.vm, key, o.ssh_port)
            steps.say(f"QEMU pid {self.vm.pid} ({self.vm.accelerator}); console in "
                      f"{self.vm.serial_log}")  # fmt: skip
            self._follow_boot(n.version)
            wait_until("ssh as core", lambda: node.ssh("true") is not None, o.boot_timeout,
                       CHECK_EVERY, self.services)  # fmt: skip
            hello = node.ssh(f"cat /{HELLO_PATH} 2>/dev/null || true") or ""
            steps.node_says(f"running {node.os_version()}" + (f"; {hello.strip()}" if hello.strip()
                                                              else ""))  # fmt: skip
            found = wait_until(
                "the node's check-in (run `wellcar agent status` on it)",
                lambda: (lambda f: f if f is not None and f[1].version == n.version else None)(
                    fleet.instance()
                ),
                o.boot_timeout, CHECK_EVERY, self.services,
            )  # fmt: skip
            steps.say(f"checked in: instance {found[0]} on {found[1].version}")
            self.console.print(instance_table(fleet))

        with steps.step("build N+1, release and publish it; the node updates itself"):
            n1 = self._build("N+1", o.build_n1, n.version)
            steps.say(f"N+1 = {n1.version} in {n1.output} ({n1.how})")
            if build_version(n1.output) <= build_version(n.output):
                raise DemoError(f"N+1 ({n1.version}) is not newer than N ({n.version})")
            fleet.release_and_publish(n1)
            steps.say(f"released and published {n1.version}; the node finds it at its next check")
            self._watch_update(node, fleet, n1.version)
            hello = node.ssh(f"cat /{HELLO_PATH} 2>/dev/null || true") or ""
            if hello.strip():
                steps.node_says(hello.strip())
            self.console.print(instance_table(fleet))

        with steps.step("what next"):
            steps.say(f"ssh to the node:   {node.ssh_command()}")
            steps.say(f"the update server: {url}  (REST docs {url}/docs, metrics {url}/metrics)")
            token_value = token_origin if token_origin.startswith("$") else f"$(cat {token_origin})"
            steps.say(f"admin token:       {token_origin}")
            steps.say(
                f"script the server: WELLCAR_SERVER={url} WELLCAR_TOKEN={token_value} "
                f"wellcar api instances list {FLATCAR_APP_ID} {group_name(channel)}"
            )
            steps.say(f"release tree:      {tree} (served at {mirror})")
            steps.say(f"node console log:  {self.vm.serial_log}; logs in {o.work / 'logs'}")
        if o.ci:
            self.console.print(f"demo ok: the node updated {n.version} -> {n1.version}")
            return
        self.console.print(
            "[bold]The node, the server and the mirror keep running; Ctrl-C (or SIGTERM) "
            "powers the node down and stops them.[/]"
        )
        while True:
            self.services.check()
            if not self.vm.is_running():
                raise DemoError("the VM stopped")
            time.sleep(2)

    def _follow_boot(self, version: str) -> None:
        assert self.vm is not None
        deadline = time.monotonic() + self.options.boot_timeout
        with self.console.status(f"booting {version} (TCG is slow: a minute or two)") as status:
            while True:
                try:
                    self.vm.wait_for_line(r"login:", timeout=2.0)
                    return
                except VmError as exc:
                    if not self.vm.is_running():
                        raise DemoError(f"the VM stopped while booting: {exc}") from None
                if time.monotonic() > deadline:
                    raise DemoError(f"no login prompt within {self.options.boot_timeout:.0f} s; "
                                    f"console: {self.vm.serial_log}")  # fmt: skip
                status.update(f"booting {version}: {visible(last_line(self.vm.serial_log))[:90]}")

    def _watch_update(self, node: Node, fleet: Fleet, target: str) -> None:
        """Show each state of the node (over ssh) and of the server as it changes, until the
        node runs ``target`` and the server has the update complete."""
        deadline = time.monotonic() + self.options.update_timeout
        shown: tuple[str, ...] = ()
        polls = 0
        while True:
            self.services.check()
            polls += 1
            found = fleet.instance()
            server = ("?", "not seen")
            if found is not None:
                server = (found[1].version, status_name(found[1].status))
            status = node.update_status()
            node_view = describe_node(status)
            current = (*node_view, *server)
            if current != shown:
                self.steps.say(f"[dim]{time.strftime('%H:%M:%S')}[/] node: {' '.join(node_view)}"
                               f" | server: {server[0]} {server[1]}")  # fmt: skip
                shown = current
            if found is not None and found[1].status == InstanceStatus.ERROR:
                raise DemoError(f"the node reported an error for {found[1].version}: {node.why()}")
            # The agent's own view costs a Python start on the node: now and then only.
            if status is not None and polls % BLOCKED_CHECK_POLLS == 0:
                agent = node.agent_status()
                if "BLOCKED" in agent:
                    raise DemoError(f"the node's agent is blocked: {agent['BLOCKED']}")
            if (
                found is not None and found[1].version == target
                and found[1].status == InstanceStatus.COMPLETE
                and node.os_version() == target
            ):  # fmt: skip
                self.steps.node_says(f"running {target} (from the other slot)")
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the node did not reach {target} within {self.options.update_timeout:.0f} "
                    f"s ({node.why()}); console: {node.vm.serial_log}"
                )
            time.sleep(CHECK_EVERY)

    def close(self) -> None:
        if self.vm is not None:
            self.vm.stop(timeout=30.0)
            self.vm.close()
        self.services.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


ERRORS = (DemoError, DemoBuildError, ImageBuildError, ReleaseError, TrustError, PayloadError,
          ApiClientError, VmError, OSError)  # fmt: skip


def run_demo(options: DemoOptions) -> int:
    """Run the demo; 0, or 1 after one ``error:`` line."""
    # soft_wrap: a long path or URL stays on one line (copyable), also in a CI log.
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    demo = Demo(options, console)
    try:
        demo.run()
        return 0
    except ERRORS as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        errors.print(f"[red]error:[/red] {visible(first)}")
        return 1
    except KeyboardInterrupt:
        console.print("stopping the node and the server")
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            demo.close()


def default_ci() -> bool:
    return os.environ.get("WELLCAR_DEMO_CI", "") not in ("", "0")
