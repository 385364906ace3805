"""Fleet simulator: N update_engines against a real `wellcar serve` on loopback.

Every simulated node has its own machine id and sends the bodies update_engine sends
(ping + updatecheck + event 3/2 on checks, event-only requests while installing). For
each backend (SQLite, PostgreSQL) and fleet size:

1. **register** (warm-up, measured but not in the main table): a fresh database gets
   the Flatcar app, a stable channel at 4459.2.0 and an unlimited group; every node sends
   its first-ever check once (answer: noupdate). The registered database is kept as a
   template.
2. **timed walk**, once per `--workers` value, each on its own copy of the template:
   a release is published (channel -> next version) and nodes walk the whole update flow
   check -> grant, 13/1, 14/1, 3/1, reboot, check with 3/2 previousversion=<old> (complete).
   When every node has walked, the next release is published and the walk starts again
   (small fleets do several rounds). The walk stops at `--duration` seconds; in-flight
   answers are still counted.

"Check-ins per second" is Omaha requests answered per second (every request of the walk
counts, event-only requests included), over the summed round times (publishing a release
between rounds is not timed). Latency is per request, from starting it (TCP connect
included when it opens one) to reading the whole answer, with `--connections` nodes in
flight (closed loop); by default a node uses one connection for its walk. After a run the
database is read back to verify that the server recorded exactly the events and status
changes the walk implies.

The server, PostgreSQL, and this load generator share the machine; server and database
CPU time per request is measured from /proc so that results stay interpretable on a
busy box.

    .venv/bin/python bench/fleet_sim.py                       # full matrix (~14 min)
    .venv/bin/python bench/fleet_sim.py --quick               # SQLite, 1k nodes, ~10 s
    .venv/bin/python bench/fleet_sim.py --backends sqlite --fleets 10000 --workers 1 \\
        --profile var/profile                                 # py-spy the server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ helpers when imported

from fleet_client import (
    REGISTRATION,
    WALK,
    FleetClient,
    PhaseStats,
    Reconnect,
    Step,
    build_template,
    make_fleet,
)
from fleet_setup import (
    FleetCensus,
    FleetDb,
    census,
    clone_postgres,
    clone_sqlite,
    drop_postgres,
    publish_release,
    register_direct,
    release_version,
    seed_catalog,
)
from profile_report import ProfileReport, summarize_profile
from wellcar.server.db.engine import sqlite_url

ROOT = Path(__file__).resolve().parent.parent
GOAL_RPS = 2000.0
GOAL_P99_MS = 100.0
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Piped output (CI logs, tee) would otherwise be cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 190)


# --- /proc sampling ---------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's supervisor and workers, postgres backends)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [
                        int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                    ]
    return out


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (a process that exited meanwhile is lost, see docs)."""
    ticks = 0
    for p in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent busy (first line of /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


# --- processes --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# Server processes import wellcar from this copy of src/ (see snapshot_source).
SERVER_SOURCE: list[Path] = []


def snapshot_source(dest: Path) -> Path:
    """Copy src/ so every server of a run runs the same code.

    Each walk starts new server processes; without a copy, a commit landing in the
    working tree mid-run (others work in the same checkout) would mix code versions in
    one results table. PYTHONPATH puts the copy ahead of the editable install's path.
    """
    shutil.copytree(ROOT / "src", dest, ignore=shutil.ignore_patterns("__pycache__"))
    SERVER_SOURCE[:] = [dest]
    return dest


@contextlib.contextmanager
def serve(data_dir: Path, database: str | None, workers: int, log: Path) -> Iterator[Server]:
    """A `wellcar serve` on 127.0.0.1, ready (/health answered) when yielded."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "wellcar.cli.main",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    if database:
        cmd += ["--database", database]
    env = {**os.environ, "WELLCAR_ADMIN_TOKEN": "bench-admin", "WELLCAR_READ_TOKEN": "bench-read"}
    if SERVER_SOURCE:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SERVER_SOURCE[0]), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    with log.open("ab") as fh:
        # Own session: a Ctrl-C reaches only us, and we stop the server in order below.
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )
    server = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}); log: {log}")
            if _healthy(port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up; log: {log}")
            time.sleep(0.1)
        yield server
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only its processes
            proc.wait()


def postmaster_pid(cluster_dir: Path) -> int:
    return int((cluster_dir / "data" / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def py_spy(server: Server, out: Path, workers: int) -> Iterator[None]:
    """Sample the server with py-spy while the block runs (raw = collapsed stacks)."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    # --gil: only the thread holding the GIL is sampled, i.e. the interpreter's time, which is
    # what a worker process is bound by. (Without it py-spy also counts threads blocked in
    # SQLite's busy handler or on the GIL; its blocking and --native modes cannot tell idle
    # threads apart in this VM.) --nonblocking keeps py-spy from pausing the server.
    cmd = [
        exe,
        "record",
        "--pid",
        str(server.proc.pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        "--gil",
    ]
    if workers > 1:
        cmd.append("--subprocesses")
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # let it attach before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


# --- running phases ---------------------------------------------------------------


def event_loop_runner() -> asyncio.Runner:
    # uvloop (a uvicorn[standard] dependency) makes the client's per-request cost smaller.
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def run_registration(
    port: int, fleet: list[Any], connections: int, reconnect: Reconnect
) -> PhaseStats:
    stats = PhaseStats()
    templates = [build_template(s, 0, f"{HOST}:{port}") for s in REGISTRATION]

    async def go() -> None:
        client = FleetClient(HOST, port, connections, reconnect)
        await client.open()
        try:
            await client.run_round(templates, iter(fleet), stats, deadline=None)
        finally:
            client.close()

    with event_loop_runner() as runner:
        runner.run(go())
    return stats


def run_walk(
    port: int,
    fleet: list[Any],
    connections: int,
    reconnect: Reconnect,
    duration: float,
    release: Callable[[int], None],
) -> PhaseStats:
    """Rounds of the update walk until `duration` is up; round r updates r -> r+1."""
    stats = PhaseStats()

    async def go() -> None:
        client = FleetClient(HOST, port, connections, reconnect)
        await client.open()
        deadline = time.monotonic() + duration
        try:
            for round_no in itertools.count():
                if time.monotonic() >= deadline:
                    break
                release(round_no + 1)
                templates = [build_template(s, round_no, f"{HOST}:{port}") for s in WALK]
                # Nodes update in an order unrelated to the order they registered in, as in
                # a real fleet. (Walking in registration order makes the server's "is the
                # rollout finished?" index scan visit every completed node: see the docs.)
                order = fleet[:]
                random.Random(round_no).shuffle(order)
                await client.run_round(templates, iter(order), stats, deadline)
        finally:
            client.close()

    with event_loop_runner() as runner:
        runner.run(go())
    return stats


# --- results ----------------------------------------------------------------------


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return float("nan")
    k = max(0, min(len(sorted_ns) - 1, math.ceil(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[k] / 1e6


@dataclass
class Latency:
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, ns: list[int]) -> Latency:
        ns = sorted(ns)
        return cls(
            len(ns),
            percentile(ns, 50),
            percentile(ns, 90),
            percentile(ns, 99),
            (ns[-1] / 1e6) if ns else float("nan"),
        )


@dataclass
class RunResult:
    phase: str  # "register" or "walk"
    backend: str
    fleet: int
    workers: int
    connections: int
    requests: int
    errors: int
    elapsed_s: float
    rps: float
    latency: Latency
    steps: dict[str, Latency]
    rounds: int
    walks_completed: int
    server_rss_mb: float
    server_peak_rss_mb: float
    server_cpu_ms_per_req: float
    db_cpu_ms_per_req: float | None  # PostgreSQL processes; None on SQLite
    client_cpu_pct: float  # this process, % of one core over the phase
    others_cpu_pct: float  # everything else on the machine (other users), % of one core
    server_cpu_split: list[float]  # CPU seconds per server process, largest first
    load_avg_1m: float
    profiled: bool = False
    bookkeeping_ok: bool | None = None
    bookkeeping: str = ""
    error_samples: list[str] = field(default_factory=list)

    @property
    def goal_ratio(self) -> float:
        return self.rps / GOAL_RPS

    @property
    def goal_met(self) -> bool:
        return self.rps >= GOAL_RPS and self.latency.p99_ms < GOAL_P99_MS


def peak_rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def measure(
    phase: str,
    backend: str,
    fleet: int,
    workers: int,
    connections: int,
    server: Server,
    db_pids: Callable[[], list[int]],
    body: Callable[[], PhaseStats],
) -> RunResult:
    """Run `body` (one phase) and collect latency, rates, CPU and memory around it."""
    srv_pids = server.pids
    srv_cpu0, db_cpu0 = cpu_seconds(srv_pids), cpu_seconds(db_pids())
    per_pid0 = {p: cpu_seconds([p]) for p in srv_pids}
    own0, busy0 = time.process_time(), machine_busy_seconds()
    wall0 = time.perf_counter()
    stats = body()
    wall = time.perf_counter() - wall0
    own, busy = time.process_time() - own0, machine_busy_seconds() - busy0
    srv_pids = server.pids  # uvicorn workers are children of the supervisor
    srv_cpu = cpu_seconds(srv_pids) - srv_cpu0
    # How the work spread over the server's processes (uvicorn workers share one socket).
    split = sorted((cpu_seconds([p]) - per_pid0.get(p, 0.0) for p in srv_pids), reverse=True)
    db_cpu = cpu_seconds(db_pids()) - db_cpu0
    everything: list[int] = []
    steps: dict[str, Latency] = {}
    for step in Step:
        s = stats.steps.get(step)
        if s is not None:
            everything += s.latencies_ns
            steps[step.label] = Latency.of(list(s.latencies_ns))
    n = stats.requests
    return RunResult(
        phase=phase,
        backend=backend,
        fleet=fleet,
        workers=workers,
        connections=connections,
        requests=n,
        errors=stats.errors,
        elapsed_s=stats.elapsed_s,
        rps=n / stats.elapsed_s if stats.elapsed_s else 0.0,
        latency=Latency.of(everything),
        steps=steps,
        rounds=stats.rounds,
        walks_completed=stats.walks_completed,
        server_rss_mb=rss_mb(srv_pids),
        server_peak_rss_mb=peak_rss_mb(srv_pids),
        server_cpu_ms_per_req=1000 * srv_cpu / n if n else 0.0,
        db_cpu_ms_per_req=(1000 * db_cpu / n if n else 0.0) if backend == "postgres" else None,
        client_cpu_pct=100 * own / wall if wall else 0.0,
        others_cpu_pct=max(0.0, 100 * (busy - srv_cpu - db_cpu - own) / wall) if wall else 0.0,
        load_avg_1m=os.getloadavg()[0],
        server_cpu_split=[round(x, 2) for x in split],
        error_samples=stats.error_samples,
    )


def check_bookkeeping(
    result: RunResult, stats_steps: dict[str, Latency], before: FleetCensus, after: FleetCensus
) -> None:
    """The server must have recorded exactly what the walk implies.

    Events: 13/1, 14/1, 3/1 and the post-reboot 3/2 are stored; the 3/2 with an empty
    previous version on a plain check is not (no update in progress). Status history: one
    row each for grant, downloading, downloaded and complete (3/1 changes no status on
    Flatcar).
    """

    def n(step: Step) -> int:
        lat = stats_steps.get(step.label)
        return lat.requests if lat else 0

    want_events = sum(
        n(s) for s in (Step.DOWNLOAD_STARTED, Step.DOWNLOAD_FINISHED, Step.INSTALLED, Step.REBOOTED)
    )
    want_history = sum(
        n(s)
        for s in (Step.CHECK_GRANT, Step.DOWNLOAD_STARTED, Step.DOWNLOAD_FINISHED, Step.REBOOTED)
    )
    got_events = after.events - before.events
    got_history = after.history - before.history
    result.bookkeeping_ok = (
        result.errors == 0
        and got_events == want_events
        and got_history == want_history
        and after.instances == result.fleet
    )
    result.bookkeeping = (
        f"events {got_events}/{want_events}, status history {got_history}/{want_history}, "
        f"instances {after.instances}, statuses {after.by_status}"
    )


# --- the matrix -------------------------------------------------------------------


@dataclass
class Options:
    backends: list[str]
    fleets: list[int]
    workers: list[int]
    connections: list[int]
    duration: float
    register_workers: int
    register_http: int
    reconnect: Reconnect
    profile_dir: Path | None
    json_path: Path | None
    keep: bool


def run_matrix(opts: Options, results: list[RunResult], profiles: list[ProfileReport]) -> None:
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="wellcar-fleet-"))
        if not opts.keep:
            stack.callback(shutil.rmtree, tmp, True)
        logs = tmp / "logs"
        logs.mkdir()
        snapshot_source(tmp / "src")
        cluster = None
        if "postgres" in opts.backends:
            sys.path.insert(0, str(ROOT / "scripts"))
            from postgres_cluster import PostgresCluster  # type: ignore[import-not-found]

            console.print("[dim]starting PostgreSQL...[/dim]")
            cluster = PostgresCluster.start()
            stack.callback(cluster.stop)
        for backend in opts.backends:
            for size in opts.fleets:
                run_backend_fleet(opts, backend, size, tmp, logs, cluster, results, profiles)


def run_backend_fleet(
    opts: Options,
    backend: str,
    size: int,
    tmp: Path,
    logs: Path,
    cluster: Any,
    results: list[RunResult],
    profiles: list[ProfileReport],
) -> None:
    """Register one fleet into a template database, then walk it once per configuration."""
    fleet = make_fleet(size)
    golden_dir = tmp / f"{backend}-{size}-template"
    golden_dir.mkdir()
    pg_template = f"golden_{size}"
    if backend == "postgres":
        url = cluster.create_database(pg_template)

        def db_pids() -> list[int]:
            return process_tree(postmaster_pid(cluster.directory))
    else:
        url = sqlite_url(golden_dir)

        def db_pids() -> list[int]:
            return []

    db = seed_catalog(url)
    database = url if backend == "postgres" else None

    # Registration: the first `register_http` nodes check in over HTTP (measured); the rest
    # are written directly, because first contact of 100k nodes at a few hundred per second
    # would take most of the time budget without telling anything the first 10k do not.
    over_http = fleet[: opts.register_http]
    conns = max(opts.connections)
    console.print(
        f"[bold]{backend} {size:,} nodes[/bold]: registering {len(over_http):,} over "
        f"HTTP (workers={opts.register_workers})..."
    )
    reg_log = logs / f"{backend}-{size}-reg.log"
    with serve(golden_dir, database, opts.register_workers, reg_log) as srv:
        reg = measure(
            "register",
            backend,
            size,
            opts.register_workers,
            conns,
            srv,
            db_pids,
            lambda: run_registration(srv.port, over_http, conns, opts.reconnect),
        )
    results.append(reg)
    console.print(
        f"  {reg.requests:,} first check-ins in {reg.elapsed_s:.1f} s "
        f"({reg.rps:,.0f}/s, p99 {reg.latency.p99_ms:.1f} ms, errors {reg.errors})"
    )
    if reg.errors:
        raise RuntimeError(f"registration failed: {reg.error_samples}")
    rest = fleet[opts.register_http :]
    if rest:
        engine = db.engine()
        try:
            register_direct(db, engine, [n.machine_id.decode() for n in rest], ip=HOST)
        finally:
            engine.dispose()
        console.print(f"  {len(rest):,} more written directly")

    for workers in opts.workers:
        for connections in opts.connections:
            res, spy_out = walk_once(
                opts,
                backend,
                size,
                workers,
                connections,
                fleet,
                db,
                url,
                pg_template,
                cluster,
                tmp,
                logs,
                db_pids,
            )
            results.append(res)
            ok = "[green]ok[/green]" if res.bookkeeping_ok else "[red]MISMATCH[/red]"
            console.print(
                f"  {res.requests:,} requests, {res.rps:,.0f}/s, p50 "
                f"{res.latency.p50_ms:.1f} ms, p99 {res.latency.p99_ms:.1f} ms, "
                f"server {res.server_cpu_ms_per_req:.2f} ms CPU/req (per process, s: "
                f"{res.server_cpu_split}), others "
                f"{res.others_cpu_pct:.0f}% CPU; bookkeeping {ok}: {res.bookkeeping}"
            )
            if spy_out is not None and spy_out.exists():
                profiles.append(summarize_profile(spy_out, f"{backend} {size:,} w{workers}"))


def walk_once(
    opts: Options,
    backend: str,
    size: int,
    workers: int,
    connections: int,
    fleet: list[Any],
    db: FleetDb,
    template_url: str,
    pg_template: str,
    cluster: Any,
    tmp: Path,
    logs: Path,
    db_pids: Callable[[], list[int]],
) -> tuple[RunResult, Path | None]:
    """One timed walk on a fresh copy of the registered fleet."""
    name = f"{backend}-{size}-w{workers}-c{connections}"
    run_dir = tmp / name
    pg_db = f"run_{size}_w{workers}_c{connections}"
    if backend == "postgres":
        run_url = clone_postgres(cluster.url, pg_template, pg_db)
        database: str | None = run_url
    else:
        run_url = clone_sqlite(template_url, run_dir)
        database = None
    run = FleetDb(run_url, db.app_id, db.channel_id, db.group_id)
    engine = run.engine()
    spy_out = None
    try:
        before = census(engine)

        def release(round_no: int) -> None:
            publish_release(run, engine, release_version(round_no))

        console.print(
            f"  walk: workers={workers}, connections={connections}, {opts.duration:.0f} s..."
        )
        with (
            serve(run_dir, database, workers, logs / f"{name}.log") as srv,
            contextlib.ExitStack() as spy,
        ):
            if opts.profile_dir is not None:
                opts.profile_dir.mkdir(parents=True, exist_ok=True)
                spy_out = opts.profile_dir / f"{name}.txt"
                spy.enter_context(py_spy(srv, spy_out, workers))
            res = measure(
                "walk",
                backend,
                size,
                workers,
                connections,
                srv,
                db_pids,
                lambda: run_walk(
                    srv.port, fleet, connections, opts.reconnect, opts.duration, release
                ),
            )
        res.profiled = spy_out is not None
        check_bookkeeping(res, res.steps, before, census(engine))
    finally:
        engine.dispose()
        if backend == "postgres":
            drop_postgres(cluster.url, pg_db)
        elif not opts.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return res, spy_out


# --- output -----------------------------------------------------------------------


def print_tables(results: list[RunResult]) -> None:
    walks = [r for r in results if r.phase == "walk"]
    table = Table(
        title=f"Fleet simulator: update walk (goal >= {GOAL_RPS:,.0f} check-ins/s "
        f"with p99 < {GOAL_P99_MS:.0f} ms)"
    )
    for col in (
        "backend",
        "fleet",
        "workers",
        "conns",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "server RSS MB",
        "vs goal",
        "srv CPU ms/req",
        "db CPU ms/req",
        "client CPU",
        "others CPU",
        "errors",
        "books",
    ):
        table.add_column(col, justify="left" if col in ("backend", "books") else "right")
    for r in walks:
        ratio = f"{r.goal_ratio:.2f}x" + (" ✓" if r.goal_met else "")
        table.add_row(
            r.backend + (" (py-spy)" if r.profiled else ""),
            f"{r.fleet:,}",
            str(r.workers),
            str(r.connections),
            f"{r.requests:,}",
            f"{r.rps:,.0f}",
            f"{r.latency.p50_ms:.1f}",
            f"{r.latency.p99_ms:.1f}",
            f"{r.server_rss_mb:.0f}",
            ratio,
            f"{r.server_cpu_ms_per_req:.2f}",
            "-" if r.db_cpu_ms_per_req is None else f"{r.db_cpu_ms_per_req:.2f}",
            f"{r.client_cpu_pct:.0f}%",
            f"{r.others_cpu_pct:.0f}%",
            str(r.errors),
            "ok" if r.bookkeeping_ok else "MISMATCH",
        )
    console.print(table)

    steps = Table(title="Per step of the walk: p50 / p99 ms")
    steps.add_column("run")
    labels = [s.label for s in WALK]
    for label in labels:
        steps.add_column(label, justify="right")
    for r in walks:
        cells = []
        for label in labels:
            lat = r.steps.get(label)
            cells.append(f"{lat.p50_ms:.1f} / {lat.p99_ms:.1f}" if lat else "-")
        steps.add_row(f"{r.backend} {r.fleet:,} w{r.workers} c{r.connections}", *cells)
    console.print(steps)

    regs = [r for r in results if r.phase == "register"]
    if regs:
        reg = Table(
            title="Registration warm-up (first-ever check of each node, answered "
            "noupdate; not in the table above)"
        )
        for col in (
            "backend",
            "fleet",
            "workers",
            "conns",
            "requests",
            "seconds",
            "req/s",
            "p50 ms",
            "p99 ms",
            "srv CPU ms/req",
            "db CPU ms/req",
            "others CPU",
        ):
            reg.add_column(col, justify="left" if col == "backend" else "right")
        for r in regs:
            reg.add_row(
                r.backend,
                f"{r.fleet:,}",
                str(r.workers),
                str(r.connections),
                f"{r.requests:,}",
                f"{r.elapsed_s:.1f}",
                f"{r.rps:,.0f}",
                f"{r.latency.p50_ms:.1f}",
                f"{r.latency.p99_ms:.1f}",
                f"{r.server_cpu_ms_per_req:.2f}",
                "-" if r.db_cpu_ms_per_req is None else f"{r.db_cpu_ms_per_req:.2f}",
                f"{r.others_cpu_pct:.0f}%",
            )
        console.print(reg)


def source_revision() -> str:
    """The commit the server code comes from, "+dirty" if src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_json(
    path: Path,
    opts: Options,
    results: list[RunResult],
    profiles: list[ProfileReport],
    revision: str,
) -> None:
    doc = {
        "goal": {"rps": GOAL_RPS, "p99_ms": GOAL_P99_MS},
        "revision": revision,  # taken at start: each walk starts a new server from src/
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "results": [
            {**asdict(r), "goal_ratio": r.goal_ratio, "goal_met": r.goal_met} for r in results
        ],
        "profiles": [asdict(p) for p in profiles],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> Options:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backends", default="sqlite,postgres", help="comma list: sqlite,postgres")
    ap.add_argument("--fleets", default="1000,10000,100000", help="comma list of fleet sizes")
    ap.add_argument("--workers", default="1,2", help="comma list of server --workers values")
    ap.add_argument(
        "--connections",
        default="32",
        help="comma list: concurrent client connections (one walk per value)",
    )
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per timed walk")
    ap.add_argument(
        "--register-workers",
        type=int,
        default=2,
        help="server workers for the registration warm-up",
    )
    ap.add_argument(
        "--register-http",
        type=int,
        default=10_000,
        help="register at most this many nodes over HTTP, the rest directly",
    )
    ap.add_argument(
        "--reconnect",
        choices=[r.value for r in Reconnect],
        default=Reconnect.WALK.value,
        help="new TCP connection per request, per node walk (default), or never (keep-alive)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: SQLite, 1k nodes, 1 worker, 5 s walk (~10 s)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the server with py-spy during each walk; summaries printed",
    )
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep databases and server logs")
    a = ap.parse_args(argv)
    if a.quick:
        a.backends, a.fleets, a.workers, a.duration, a.register_workers = (
            "sqlite",
            "1000",
            "1",
            5,
            1,
        )
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    if not set(backends) <= {"sqlite", "postgres"}:
        ap.error("--backends: sqlite and/or postgres")
    return Options(
        backends=backends,
        fleets=[int(x) for x in a.fleets.split(",")],
        workers=[int(x) for x in a.workers.split(",")],
        connections=[int(x) for x in str(a.connections).split(",")],
        duration=a.duration,
        register_workers=a.register_workers,
        register_http=a.register_http,
        reconnect=Reconnect(a.reconnect),
        profile_dir=a.profile,
        json_path=a.json,
        keep=a.keep,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results: list[RunResult] = []
    profiles: list[ProfileReport] = []
    started = time.monotonic()
    interrupted = False
    revision = source_revision()
    console.print(
        f"[dim]server code at {revision}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}[/dim]"
    )
    try:
        run_matrix(opts, results, profiles)
    except KeyboardInterrupt:
        interrupted = True  # servers and PostgreSQL were stopped by the context managers
        console.print("[yellow]interrupted: partial results[/yellow]")
    if results:
        print_tables(results)
    for p in profiles:
        p.print(console)
    if opts.json_path is not None:
        write_json(opts.json_path, opts, results, profiles, revision)
    console.print(f"[dim]total {time.monotonic() - started:.0f} s[/dim]")
    walks = [r for r in results if r.phase == "walk"]
    if interrupted:
        return 130
    return 0 if walks and all(r.bookkeeping_ok for r in walks) else 1


if __name__ == "__main__":
    sys.exit(main())
