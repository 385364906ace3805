"""Update agent benchmark: memory, CPU per update check, install time beside `payload apply`.

Everything is real and on 127.0.0.1: `wellcar serve` (SQLite) seeded through its REST API,
the payload served by a stdlib HTTP server, a node on a disk image file (`wellcar disk
create`, FileSlotBackend) and the agent as a child process,
`python -m wellcar agent run --root <tmp root> --disk-image <img>`, configured by an
update.conf with a short check interval. The run:

1. the agent started through the lean module entry point
   (`python -m wellcar.agent run`): idle RSS and CPU over a few no-update checks,
   to show what the agent itself costs apart from importing every `wellcar` command;
2. the agent started as `python -m wellcar agent run`: RSS (VmRSS sampled, VmHWM) and CPU
   (utime + stime from /proc/<pid>/stat) over N no-update checks, then 2.0.0 is published
   and the agent downloads and installs it: RSS during the install and the install time,
   split at the status file's FINALIZING (download and checks done, writing the slot);
3. `wellcar payload apply` of the same payload into slot B of a fresh image of the same
   layout, as a child timed with wait4: the ratio of the two install times.

Goal (issue): agent RSS <= 50 MB idle.

The /usr image is the cached erofs image of bench/payload_images.py when present (282 MiB of
real Debian /usr), else a synthetic one (--synthetic-mib, part random, part text, part
zeros). Payloads are generated once per image and zstd level and cached beside the image
pair in $WELLCAR_BENCH_CACHE (else ~/.cache/wellcar/bench).

    .venv/bin/python bench/agent.py [--checks 10] [--interval 2] [--synthetic] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payload_images import cache_key, default_cache_dir
from wellcar.agent.control import request
from wellcar.cli.api_client import ApiClient
from wellcar.disk import Slot, SlotTable
from wellcar.omaha import FLATCAR_APP_ID
from wellcar.payload.reader import file_opener
from wellcar.payload.resume import CheckpointFile
from wellcar.payload.signing import load_trusted_keys
from wellcar.payload.slot_install import install_into_slot
from wellcar.server.api.models import (
    AppCreate,
    ChannelCreate,
    ChannelUpdate,
    FlatcarActionInput,
    GroupCreate,
    PackageCreate,
)

PYTHON = sys.executable
WELLCAR = [PYTHON, "-m", "wellcar"]
AGENT_FULL = [*WELLCAR, "agent", "run"]
AGENT_LEAN = [PYTHON, "-m", "wellcar.agent", "run"]
MB = 1_000_000
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
OLD_VERSION, NEW_VERSION = "1.0.0", "2.0.0"
TOKEN = "bench-agent-admin-token"
GOAL_IDLE_RSS = 50 * MB


def log(message: str) -> None:
    print(f"[bench/agent] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ----------------------------------------------------------------------------- /proc


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


class RssSampler:
    """VmRSS of a process every ``interval`` seconds, in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(proc_memory(self.pid)[0])
            except (OSError, KeyError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    usr_image: Path
    usr_kind: str
    slot_size: int
    payload: Path
    public_key: Path
    generate_seconds: float | None  # None: reused from the cache


def cached_erofs_image() -> Path | None:
    """bench/payload_images.py's new image, if it was built before (never builds it)."""
    key = cache_key()
    directory = default_cache_dir().expanduser() / f"usr-pair-{key[:16]}"
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    image = directory / "new.erofs"
    if manifest.get("cache_key") != key or not image.is_file():
        return None
    if image.stat().st_size != manifest["new"]["size"]:
        return None
    return image


def synthetic_image(path: Path, mib: int) -> Path:
    """``mib`` MiB of /usr-like blocks: 30 % random, 50 % text-like, 20 % zeros."""
    if path.is_file() and path.stat().st_size == mib * MIB:
        return path
    rng = random.Random(20261122)
    words = [
        bytes(rng.choices(b"etaoinshrdlucmfwypvbgkjqxz", k=rng.randint(2, 9))) for _ in range(4000)
    ]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        for _ in range(mib * 256):  # 4 KiB blocks
            r = rng.random()
            if r < 0.3:
                out.write(rng.randbytes(4096))
            elif r < 0.8:
                out.write((b" ".join(rng.choices(words, k=900)) + b"\n" * 4096)[:4096])
            else:
                out.write(bytes(4096))
    tmp.rename(path)
    return path


def prepare_inputs(synthetic: bool, synthetic_mib: int, zstd_level: int) -> Inputs:
    cache = default_cache_dir().expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    image = None if synthetic else cached_erofs_image()
    kind = "real /usr (cached erofs image of bench/payload_images.py)"
    if image is None:
        log(f"making a synthetic {synthetic_mib} MiB /usr image")
        image = synthetic_image(cache / f"agent-synthetic-{synthetic_mib}mib.img", synthetic_mib)
        kind = f"synthetic /usr ({synthetic_mib} MiB: random, text, zeros)"
    size = image.stat().st_size
    slot_size = max(256 * MIB, -(-(size + 16 * MIB) // (64 * MIB)) * 64 * MIB)
    st = image.stat()
    tag = hashlib.sha256(f"{image}:{st.st_size}:{st.st_mtime_ns}:{zstd_level}".encode()).hexdigest()
    directory = cache / f"agent-payload-{tag[:16]}"
    payload, public = directory / "update.crau", directory / "payload-key.pub"
    if payload.is_file() and public.is_file():
        log(f"reusing the payload {payload}")
        return Inputs(image, kind, slot_size, payload, public, None)
    work = directory.with_name(directory.name + f".tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    run([*WELLCAR, "keys", "generate", str(work / "payload-key")])
    log(f"generating the payload of {image} at zstd level {zstd_level} (cached afterwards)")
    started = time.perf_counter()
    run([*WELLCAR, "payload", "generate", "--new", str(image), "-o", str(work / "update.crau"),
         "--key", str(work / "payload-key.key"), "--zstd-level", str(zstd_level)])  # fmt: skip
    seconds = time.perf_counter() - started
    shutil.rmtree(directory, ignore_errors=True)
    work.rename(directory)
    return Inputs(image, kind, slot_size, payload, public, seconds)


def run(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# ------------------------------------------------------------------------- the world


@dataclass
class World:
    work: Path
    server_url: str
    payload_url: str
    api: ApiClient
    app_id: str
    channel_id: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def wait_healthy(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within 60 s")


def publish(world: World, version: str, payload: Path | None) -> None:
    """Make ``version`` the channel's package: ``payload``'s digests, or a stand-in's."""
    data_sha1 = hashlib.sha1()
    data_sha256 = hashlib.sha256()
    if payload is None:
        data_sha1.update(version.encode())
        data_sha256.update(version.encode())
        size, name = 1, "never-downloaded"
    else:
        with payload.open("rb") as f:
            while chunk := f.read(MIB):
                data_sha1.update(chunk)
                data_sha256.update(chunk)
        size, name = payload.stat().st_size, payload.name
    package = world.api.create_package(
        world.app_id,
        PackageCreate(
            version=version,
            url=world.payload_url,
            filename=name,
            size=str(size),
            hash=base64.b64encode(data_sha1.digest()).decode(),
            flatcar_action=FlatcarActionInput(
                sha256=base64.b64encode(data_sha256.digest()).decode()
            ),
            channels_blacklist=[],
        ),
    )
    world.api.update_channel(world.app_id, world.channel_id, ChannelUpdate(package_id=package.id))


@contextmanager
def world_running(work: Path, payload: Path) -> Iterator[World]:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port, www_port = free_port(), free_port()
        env = {**os.environ, "WELLCAR_ADMIN_TOKEN": TOKEN}
        server_log = (work / "server.log").open("wb")
        processes.append(subprocess.Popen(
            [*WELLCAR, "serve", "--data-dir", str(work / "server"), "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=server_log, stderr=server_log,
        ))  # fmt: skip
        www = work / "www"
        www.mkdir()
        os.symlink(payload, www / payload.name)
        processes.append(subprocess.Popen(
            [PYTHON, "-m", "http.server", str(www_port), "--bind", "127.0.0.1",
             "--directory", str(www)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_healthy(f"{base}/health", processes[0], "wellcar serve")
        wait_healthy(f"http://127.0.0.1:{www_port}/", processes[1], "the payload server")
        api = ApiClient(base, TOKEN)
        app = api.create_app(AppCreate(id=FLATCAR_APP_ID, name="bench", description="agent"))
        channel = api.create_channel(app.id, ChannelCreate(name="stable", color="#000", arch=1))
        api.create_group(
            app.id,
            GroupCreate(
                name="Stable", track="stable", channel_id=channel.id,
                policy_updates_enabled=True, policy_safe_mode=False, policy_office_hours=False,
                policy_timezone="UTC", policy_period_interval="1 minutes",
                policy_max_updates_per_period=100, policy_update_timeout="60 minutes",
            ),
        )  # fmt: skip
        world = World(work, f"{base}/v1/update/", f"http://127.0.0.1:{www_port}/", api,
                      app.id, channel.id, processes)  # fmt: skip
        publish(world, OLD_VERSION, None)  # the node's own version: "no update"
        yield world
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def make_root(work: Path, world: World, inputs: Inputs, interval: float) -> Path:
    root = work / "root"
    (root / "etc/wellcar").mkdir(parents=True)
    keys = root / "usr/share/wellcar/update-payload-keys"
    keys.mkdir(parents=True)
    shutil.copy(inputs.public_key, keys / "payload-key.pub")
    conf = [
        f"SERVER={world.server_url}",
        "GROUP=stable",
        f"WELLCAR_RELEASE_VERSION={OLD_VERSION}",
        "WELLCAR_RELEASE_BOARD=amd64-usr",
        "REBOOT_STRATEGY=off",  # stay up in UPDATED_NEED_REBOOT after the install
        "HEALTH_UNITS=",
        "CHECK_INITIAL_DELAY=1s",
        f"CHECK_INTERVAL={interval}s",
        "CHECK_FUZZ=0",
        "STATE_DIR=/var/lib/wellcar",
        "PAYLOAD_KEY_DIR=/usr/share/wellcar/update-payload-keys",
    ]
    (root / "etc/wellcar/update.conf").write_text("\n".join(conf) + "\n")
    return root


def make_disk(path: Path, slot_size: int) -> Path:
    run([*WELLCAR, "disk", "create", str(path), "--usr-size", str(slot_size), "--seed", path.name])
    return path


# ------------------------------------------------------------------------- the agent


def read_status(state_dir: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads((state_dir / "status.json").read_text())
        return document
    except (OSError, ValueError):
        return {}


@dataclass
class CheckFigures:
    entry: str
    checks: int
    seconds: float
    cpu_seconds: float
    rss_median: int
    rss_max: int
    hwm: int

    @property
    def cpu_per_check(self) -> float:
        return self.cpu_seconds / self.checks


@dataclass
class InstallRound:
    version: str
    download_seconds: float  # update found .. FINALIZING (downloaded, size and hash checked)
    apply_seconds: float  # FINALIZING .. UPDATED_NEED_REBOOT (slot written and verified)
    cpu_seconds: float
    states: dict[str, float]  # first time each state was seen, from publishing

    @property
    def total_seconds(self) -> float:
        return self.download_seconds + self.apply_seconds


@dataclass
class InstallFigures:
    rounds: list[InstallRound]
    rss_max: int  # sampled VmRSS, all rounds
    hwm: int  # VmHWM after the last round: the process's peak
    rss_after: int  # idle in UPDATED_NEED_REBOOT after the last round


class Agent:
    """The agent child process and what it saves."""

    def __init__(self, argv: Sequence[str], root: Path, image: Path, log_path: Path) -> None:
        self.state_dir = root / "var/lib/wellcar"
        self.log_path = log_path
        # A check saved by an earlier run is not this process's first check.
        self.check_before_start = read_status(self.state_dir).get("last_check_time")
        with log_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [*argv, "--root", str(root), "--disk-image", str(image)],
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        self.pid = self.process.pid

    def alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text()[-2000:]
            raise SystemExit(f"the agent exited with {self.process.returncode}:\n{tail}")

    def wait_for(self, condition: Any, timeout: float, what: str, poll: float = 0.02) -> None:
        deadline = time.monotonic() + timeout
        while not condition(read_status(self.state_dir)):
            self.alive()
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            time.sleep(poll)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def measure_checks(self, entry: str, checks: int, interval: float) -> CheckFigures:
        """RSS and CPU over ``checks`` scheduled no-update checks."""
        before = self.check_before_start
        self.wait_for(
            lambda s: s.get("last_check_time") not in (None, before), 60, "the first check"
        )
        seen = read_status(self.state_dir)["last_check_time"]
        cpu0, started = proc_cpu_seconds(self.pid), time.monotonic()
        count = 0
        with RssSampler(self.pid, 0.1) as sampler:
            deadline = started + checks * interval * 3 + 15
            while count < checks:
                self.alive()
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {count} of {checks} checks within the time allowed")
                status = read_status(self.state_dir)
                if status.get("last_check_time") not in (None, seen):
                    seen, count = status["last_check_time"], count + 1
                    if status.get("state") != "UPDATE_STATUS_IDLE" or status.get("last_error_code"):
                        raise SystemExit(f"a check did not end in IDLE without error: {status}")
                time.sleep(0.02)
            cpu1, ended = proc_cpu_seconds(self.pid), time.monotonic()
        _, hwm = proc_memory(self.pid)
        samples = sampler.samples
        return CheckFigures(entry, count, ended - started, cpu1 - cpu0,
                            int(statistics.median(samples)), max(samples), hwm)  # fmt: skip

    def install_once(self, world: World, payload: Path, version: str) -> InstallRound:
        """Publish ``version`` (the same payload) and time the agent's install of it."""
        cpu0 = proc_cpu_seconds(self.pid)
        states: dict[str, float] = {}
        published = time.monotonic()
        publish(world, version, payload)
        deadline = published + 900
        while True:
            self.alive()
            status = read_status(self.state_dir)
            state = str(status.get("state", "")).removeprefix("UPDATE_STATUS_")
            now = time.monotonic() - published
            if state and state not in states and (states or state != "IDLE"):
                states[state] = now
            if state == "UPDATED_NEED_REBOOT" and status.get("new_version") == version:
                break
            if "DOWNLOADING" in states and state in ("IDLE", "REPORTING_ERROR_EVENT"):
                raise SystemExit(f"the install failed: {status.get('last_error_message')}")
            if time.monotonic() > deadline:
                raise SystemExit("the install did not finish within 15 min")
            time.sleep(0.02)
        found = min(states[s] for s in ("UPDATE_AVAILABLE", "DOWNLOADING") if s in states)
        return InstallRound(
            version=version,
            download_seconds=states["FINALIZING"] - found,
            apply_seconds=states["UPDATED_NEED_REBOOT"] - states["FINALIZING"],
            cpu_seconds=proc_cpu_seconds(self.pid) - cpu0,
            states={k: round(v, 3) for k, v in states.items()},
        )

    def measure_install(self, world: World, payload: Path, rounds: int) -> InstallFigures:
        """``rounds`` installs of the payload as 2.0.0, 2.0.1, ...; between two, `reset`
        through the control socket (the installed slot is marked bad, the next version
        goes into it again)."""
        done: list[InstallRound] = []
        with RssSampler(self.pid, 0.05) as sampler:
            for i in range(rounds):
                if i:
                    request(self.state_dir / "agent.sock", "reset", timeout=30)
                done.append(self.install_once(world, payload, f"2.0.{i}"))
        _, hwm = proc_memory(self.pid)
        time.sleep(3)  # idle again, waiting for a reboot
        return InstallFigures(done, max(sampler.samples), hwm, proc_memory(self.pid)[0])


# --------------------------------------------------------------------- payload apply


@dataclass
class ApplyFigures:
    wall_seconds: float
    reported_seconds: float  # "... in X s" printed by the command: the apply alone
    cpu_seconds: float
    peak_rss: int
    sha256: str | None


def payload_apply(payload: Path, public_key: Path, disk: Path) -> ApplyFigures:
    """`wellcar payload apply` into slot B of ``disk``, as a child timed with wait4."""
    argv = [*WELLCAR, "payload", "apply", str(payload), "--disk", str(disk), "--slot", "B",
            "--version", NEW_VERSION, "--key", str(public_key)]  # fmt: skip
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"payload apply failed: {text.strip()}")
    words = " ".join(text.split()).split(" operations in ")
    reported = float(words[1].split(" s")[0]) if len(words) > 1 else wall
    sha = SlotTable.for_image(disk).slot(Slot.B).record.sha256
    return ApplyFigures(wall, reported, usage.ru_utime + usage.ru_stime,
                        usage.ru_maxrss * 1024, sha)  # fmt: skip


def apply_in_process(payload: Path, public_key: Path, disk: Path, work: Path) -> float:
    """Seconds for install_into_slot (what the agent calls, what `payload apply --disk`
    calls) into slot B, in this process: no interpreter start-up, exact timing."""
    table = SlotTable.for_image(disk)
    keys = load_trusted_keys([public_key])
    checkpoint = CheckpointFile(work / "in-process-apply.json")
    started = time.perf_counter()
    install_into_slot(file_opener(payload), disk, table, keys, NEW_VERSION, slot=Slot.B,
                      checkpoint=checkpoint)  # fmt: skip
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- report


def mb(value: int) -> str:
    return f"{value / MB:.1f} MB"


def spread(values: Sequence[float]) -> str:
    """Median (best) of a few timings, in seconds."""
    return f"{statistics.median(values):.2f} s ({min(values):.2f})"


def print_report(result: dict[str, Any]) -> None:
    inputs, lean, full = result["inputs"], result["lean"], result["full"]
    install, applies = result["install"], result["apply"]
    rounds = install["rounds"]
    download = [r["download_seconds"] for r in rounds]
    write = [r["apply_seconds"] for r in rounds]
    total = [r["download_seconds"] + r["apply_seconds"] for r in rounds]
    reported = [a["reported_seconds"] for a in applies]
    in_process = result["apply_in_process_seconds"]
    wall = [a["wall_seconds"] for a in applies]
    median = statistics.median

    def goal(figures: dict[str, Any]) -> str:
        return "met" if figures["rss_median"] <= GOAL_IDLE_RSS else "NOT met"

    def per_check(figures: dict[str, Any]) -> str:
        ms = figures["cpu_seconds"] / figures["checks"] * 1e3
        return f"{ms:.1f} ms ({figures['checks']} checks in {figures['seconds']:.1f} s)"

    rows: list[tuple[str, str, str]] = [
        ("/usr image", f"{inputs['usr_bytes'] / MIB:.1f} MiB", inputs["usr_kind"]),
        ("slot / payload", f"{inputs['slot_size'] / MIB:.0f} MiB / "
         f"{inputs['payload_bytes'] / MIB:.1f} MiB", f"{inputs['cpus']} CPUs"),
        ("", "", ""),
        ("idle RSS, median (max)", "", "goal <= 50 MB"),
        ("  python -m wellcar agent run",
         f"{mb(full['rss_median'])} ({mb(full['rss_max'])})", goal(full)),
        ("  python -m wellcar.agent run",
         f"{mb(lean['rss_median'])} ({mb(lean['rss_max'])})", goal(lean)),
        ("CPU per no-update check (utime+stime)", "", ""),
        ("  python -m wellcar agent run", per_check(full), ""),
        ("  python -m wellcar.agent run", per_check(lean), ""),
        ("", "", ""),
        ("RSS during install, sampled max / VmHWM",
         f"{mb(install['rss_max'])} / {mb(install['hwm'])}", "wellcar agent run"),
        ("RSS after install (waiting for reboot)", mb(install["rss_after"]), ""),
        ("", "", ""),
        (f"install, median (best) of {len(rounds)} / {len(applies)}", "agent",
         "wellcar payload apply"),
        ("  download (update found .. FINALIZING)", spread(download), "-"),
        ("  write + verify slot (FINALIZING .. NEED_REBOOT)", spread(write),
         f"{spread(reported)} as it prints it (0.1 s steps)"),
        ("  the same, install_into_slot in-process", "", spread(in_process)),
        ("  whole install", spread(total), f"{spread(wall)} wall, with start-up"),
        ("  ratio agent / payload apply, whole (wall)", f"{median(total) / median(wall):.2f}",
         ""),
        ("  ratio agent / apply alone, writing the slot",
         f"{median(write) / median(in_process):.2f}", "vs install_into_slot in-process"),
        ("  CPU per install",
         f"{median([r['cpu_seconds'] for r in rounds]):.2f} s",
         f"{median([a['cpu_seconds'] for a in applies]):.2f} s"),
        ("  peak RSS", f"{mb(install['hwm'])} (VmHWM)",
         f"{mb(max(a['peak_rss'] for a in applies))} (wait4)"),
        ("  slot B content identical (sha256)", "yes" if result["same_slot_content"] else "NO",
         ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    second = max(len(r[1]) for r in rows) + 2
    for label, value, note in rows:
        print(f"{label:<{width}}{value:<{second}}{note}".rstrip())


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=10, help="no-update checks to measure")
    parser.add_argument("--interval", type=float, default=2.0, help="CHECK_INTERVAL, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="installs (and applies) to time")
    parser.add_argument("--zstd-level", type=int, default=19, help="payload compression")
    parser.add_argument("--synthetic", action="store_true", help="ignore the cached erofs image")
    parser.add_argument("--synthetic-mib", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    inputs = prepare_inputs(args.synthetic, args.synthetic_mib, args.zstd_level)
    # Short: the agent's control socket lives under it (Unix socket paths <= 107 bytes).
    work = Path(tempfile.mkdtemp(prefix="wcb-", dir="/tmp"))
    log(f"work directory {work}")
    started = time.monotonic()
    try:
        with world_running(work, inputs.payload) as world:
            root = make_root(work, world, inputs, args.interval)
            image = make_disk(work / "node.img", inputs.slot_size)
            log("agent via the lean entry point: idle and no-update checks")
            lean_agent = Agent(AGENT_LEAN, root, image, work / "agent-lean.log")
            try:
                lean = lean_agent.measure_checks("lean", max(3, args.checks // 2), args.interval)
            finally:
                lean_agent.stop()
            log(f"`wellcar agent run`: {args.checks} no-update checks, {args.rounds} installs")
            agent = Agent(AGENT_FULL, root, image, work / "agent.log")
            try:
                full = agent.measure_checks("full", args.checks, args.interval)
                install = agent.measure_install(world, inputs.payload, args.rounds)
            finally:
                code = agent.stop()
            if code != 0:
                raise SystemExit(f"the agent exited with {code} on SIGTERM")
        log(f"wellcar payload apply of the same payload, {args.rounds} times")
        reference = make_disk(work / "reference.img", inputs.slot_size)
        applies = [
            payload_apply(inputs.payload, inputs.public_key, reference) for _ in range(args.rounds)
        ]
        in_process = [
            apply_in_process(inputs.payload, inputs.public_key, reference, work)
            for _ in range(args.rounds)
        ]
        node_sha = SlotTable.for_image(image).slot(Slot.B).record.sha256
        errors = [line for line in (work / "agent.log").read_text().splitlines()
                  if "level=error" in line]  # fmt: skip
        result = {
            "inputs": {
                "usr_image": str(inputs.usr_image),
                "usr_kind": inputs.usr_kind,
                "usr_bytes": inputs.usr_image.stat().st_size,
                "slot_size": inputs.slot_size,
                "payload_bytes": inputs.payload.stat().st_size,
                "payload_generate_seconds": inputs.generate_seconds,
                "check_interval": args.interval,
                "cpus": os.cpu_count(),
            },
            "lean": asdict(lean),
            "full": asdict(full),
            "install": asdict(install),
            "apply": [asdict(a) for a in applies],
            "apply_in_process_seconds": in_process,
            "same_slot_content": node_sha is not None
            and all(a.sha256 == node_sha for a in applies),
            "agent_errors": errors,
            "bench_seconds": round(time.monotonic() - started, 1),
        }
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_report(result)
    if errors:
        print("agent errors:", *errors, sep="\n  ")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    log(f"done in {result['bench_seconds']} s")
    return 0 if result["same_slot_content"] and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
