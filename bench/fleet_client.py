"""The load generator of the fleet simulator: simulated update_engines on keep-alive sockets.

Cheapness matters more than elegance here: server and load generator share a 2-core
machine, so every microsecond spent in the client is taken from the server. Hence:

* request bytes come from templates rendered once per step and round by
  `wellcar.omaha.render_request` (checked byte for byte against a direct render); a
  request is then one `bytes.join` of the template parts with the node's machine id and
  boot id (fixed width, so Content-Length is part of the template);
* one `asyncio.Protocol` per connection and one future per request, no stream objects;
* answers are checked by substring (status line, the Omaha status we expect), not parsed;
  the first answer of every kind is also fully parsed with `parse_response` as a sanity check.

The load is closed-loop: `connections` slots, each walking one node at a time through
its steps in order (a node never sends 13/1 before its grant came back), as a real fleet
does; a slot that finishes a node takes the next one. By default a node opens one TCP
connection for its walk: update_engine itself opens one per request (a new libcurl
transfer), and long-lived keep-alive connections would all be accepted by one uvicorn
worker (they share one listening socket), hiding what `--workers 2` does.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import cast

from fleet_setup import TRACK, release_version
from wellcar.omaha import (
    FLATCAR_APP_ID,
    AppRequest,
    Event,
    Ping,
    Request,
    UpdateCheck,
    parse_response,
    render_request,
    update_engine_request,
)

# Fixed-width placeholders: a machine id is 32 hex digits (/etc/machine-id), a boot id a
# braced UUID (/proc/sys/kernel/random/boot_id). Neither string can occur elsewhere.
_MID = "m" * 32
_BOOT = "{" + "b" * 36 + "}"


class Step(IntEnum):
    """One Omaha request kind of the update flow, in the order a node sends them."""

    REGISTER = 0  # first-ever check (event 3/2 previousversion="0.0.0.0"): noupdate
    CHECK_GRANT = 1  # periodic check (3/2 previousversion=""), answered with an update
    DOWNLOAD_STARTED = 2  # event 13/1
    DOWNLOAD_FINISHED = 3  # event 14/1
    INSTALLED = 4  # event 3/1 (update_engine then waits for the reboot)
    REBOOTED = 5  # check from the new version with 3/2 previousversion=<old>: completes

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Step.REGISTER: "register (check, noupdate)",
    Step.CHECK_GRANT: "check -> grant",
    Step.DOWNLOAD_STARTED: "event 13/1",
    Step.DOWNLOAD_FINISHED: "event 14/1",
    Step.INSTALLED: "event 3/1",
    Step.REBOOTED: "check 3/2 after reboot",
}
WALK = (
    Step.CHECK_GRANT,
    Step.DOWNLOAD_STARTED,
    Step.DOWNLOAD_FINISHED,
    Step.INSTALLED,
    Step.REBOOTED,
)
REGISTRATION = (Step.REGISTER,)


@dataclass(frozen=True, slots=True)
class Node:
    machine_id: bytes
    boot_ids: tuple[bytes, bytes]  # alternates at every reboot


def make_fleet(size: int, seed: int = 4459) -> list[Node]:
    """`size` nodes with random (seeded, so reproducible) machine and boot ids.

    Random ids matter: indexes on machine id then see the insert and lookup pattern of
    a real fleet, not an ever-increasing key.
    """
    rng = random.Random(seed)

    def boot() -> bytes:
        return ("{" + str(uuid.UUID(int=rng.getrandbits(128), version=4)) + "}").encode()

    return [Node(f"{rng.getrandbits(128):032x}".encode(), (boot(), boot())) for _ in range(size)]


def omaha_request(step: Step, round_no: int, machine_id: str, boot_id: str) -> Request:
    """What update_engine sends at `step` of update round `round_no` (from r to r+1)."""
    old, new = release_version(round_no), release_version(round_no + 1)
    running = new if step is Step.REBOOTED else old
    app = AppRequest(
        appid=FLATCAR_APP_ID,
        version=running,
        track=TRACK,
        bootid=boot_id,
        machineid=machine_id,
        machinealias="",
        oem="qemu",
        oemversion="0.1.2",
        alephversion=release_version(0),
        lang="en-US",
        board="amd64-usr",
        hardware_class="",
        delta_okay=False,
    )
    if step is Step.REGISTER:
        app.ping, app.updatecheck = Ping(active=1), UpdateCheck()
        app.events = [Event(3, 2, previousversion="0.0.0.0")]
    elif step is Step.CHECK_GRANT:
        app.ping, app.updatecheck = Ping(active=1), UpdateCheck()
        app.events = [Event(3, 2, previousversion="")]
    elif step is Step.REBOOTED:
        app.ping, app.updatecheck = Ping(active=1), UpdateCheck()
        app.events = [Event(3, 2, previousversion=old)]
    else:
        etype, eresult = {
            Step.DOWNLOAD_STARTED: (13, 1),
            Step.DOWNLOAD_FINISHED: (14, 1),
            Step.INSTALLED: (3, 1),
        }[step]
        app.events = [Event(etype, eresult)]
    return update_engine_request(app, running=running)


@dataclass(frozen=True, slots=True)
class Template:
    """The full HTTP request of one step, split around the node's ids."""

    step: Step
    parts: tuple[bytes, bytes, bytes]  # head+body up to machine id | up to boot id | rest
    boot_slot: int  # which of the node's boot ids (alternating per reboot)
    machine_first: bool  # machineid comes before bootid in the rendered XML
    expect: bytes  # substring every correct answer carries
    round_no: int

    def render(self, node: Node) -> bytes:
        boot = node.boot_ids[self.boot_slot]
        a, b = (node.machine_id, boot) if self.machine_first else (boot, node.machine_id)
        return self.parts[0] + a + self.parts[1] + b + self.parts[2]


def build_template(step: Step, round_no: int, host: str) -> Template:
    body = render_request(omaha_request(step, round_no, _MID, _BOOT))
    head = (
        f"POST /v1/update/ HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    raw = head + body
    mid, boot = _MID.encode(), _BOOT.encode()
    assert raw.count(mid) == 1 and raw.count(boot) == 1
    machine_first = raw.index(mid) < raw.index(boot)
    first, second = (mid, boot) if machine_first else (boot, mid)
    p0, rest = raw.split(first)
    p1, p2 = rest.split(second)
    if step is Step.CHECK_GRANT:
        expect = f'<manifest version="{release_version(round_no + 1)}"'.encode()
    elif step in (Step.REGISTER, Step.REBOOTED):
        expect = b'<updatecheck status="noupdate"'
    else:
        expect = b'<event status="ok"'
    # Boot ids alternate per reboot: round r runs on slot r % 2 until its reboot.
    slot = (round_no + (1 if step is Step.REBOOTED else 0)) % 2
    tpl = Template(step, (p0, p1, p2), slot, machine_first, expect, round_no)
    _check_template(tpl, round_no)
    return tpl


def _check_template(tpl: Template, round_no: int) -> None:
    """The template must produce exactly what render_request renders for a real node."""
    node = make_fleet(1, seed=1)[0]
    got = tpl.render(node)
    want = render_request(
        omaha_request(
            tpl.step, round_no, node.machine_id.decode(), node.boot_ids[tpl.boot_slot].decode()
        )
    )
    assert got.endswith(b"\r\n\r\n" + want), "template does not match render_request"


# --- the driver -------------------------------------------------------------------


@dataclass(slots=True)
class StepStats:
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    errors: int = 0


@dataclass(slots=True)
class PhaseStats:
    """Everything measured in one phase (a registration pass or a timed walk)."""

    steps: dict[Step, StepStats] = field(default_factory=dict)
    elapsed_s: float = 0.0  # summed over rounds: releases between rounds are not counted
    rounds: int = 0
    walks_completed: int = 0
    error_samples: list[str] = field(default_factory=list)

    def stats(self, step: Step) -> StepStats:
        found = self.steps.get(step)
        if found is None:
            found = self.steps[step] = StepStats()
        return found

    @property
    def requests(self) -> int:
        return sum(len(s.latencies_ns) for s in self.steps.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.steps.values())


class Reconnect(StrEnum):
    """When a simulated node opens a new TCP connection."""

    REQUEST = "request"  # update_engine: a new libcurl transfer (and connection) per request
    WALK = "walk"  # one connection per node for its whole walk
    NEVER = "never"  # keep-alive connections for the whole phase


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; `request` resolves with the whole raw answer."""

    __slots__ = ("_buf", "_need", "_waiter", "transport")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # total bytes of the answer being read, -1 before its head is in
        self._waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def request(self, raw: bytes) -> asyncio.Future[bytes]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            # Uvicorn always sends content-length for these answers (no chunking).
            at = buf.find(b"content-length:", 0, end)
            if at < 0:
                self._finish(exc=RuntimeError("answer without content-length"))
                return
            line_end = buf.find(b"\r\n", at, end + 2)
            self._need = end + 4 + int(buf[at + 15 : line_end])
        if len(buf) < self._need:
            return
        answer = bytes(buf[: self._need])
        del buf[: self._need]
        self._need = -1
        self._finish(answer)

    def _finish(self, answer: bytes = b"", exc: Exception | None = None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish(exc=ConnectionError(f"server closed the connection: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Round:
    """One pass over a list of nodes with a fixed sequence of steps (the templates)."""

    def __init__(
        self,
        templates: Sequence[Template],
        nodes: Iterator[Node],
        stats: PhaseStats,
        deadline: float | None,
    ) -> None:
        self.templates = templates
        self.nodes = nodes
        self.stats = stats
        self.step_stats = [stats.stats(t.step) for t in templates]
        self.deadline = deadline
        self.checked: set[Step] = set()

    def time_is_up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self, tpl: Template, stats: StepStats, answer: bytes) -> bool:
        ok = answer.startswith(b"HTTP/1.1 200") and tpl.expect in answer
        if ok and tpl.step not in self.checked:
            self.checked.add(tpl.step)
            ok = self._deep_check(tpl, answer)
        if not ok:
            stats.errors += 1
            if len(self.stats.error_samples) < 5:
                self.stats.error_samples.append(f"{tpl.step.label}: {answer[-400:]!r}")
        return ok

    def _deep_check(self, tpl: Template, answer: bytes) -> bool:
        body = answer[answer.index(b"\r\n\r\n") + 4 :]
        app = parse_response(body).apps[0]
        if app.status != "ok":
            return False
        if tpl.step in (Step.REGISTER, Step.CHECK_GRANT, Step.REBOOTED):
            return app.ping_status == "ok" and app.event_statuses == ["ok"]
        return app.event_statuses == ["ok"] and app.updatecheck is None


class FleetClient:
    """`size` concurrent simulated nodes (closed loop) against one server.

    Each slot takes the next node, walks it through the round's steps in order, then takes
    the next node. Latency is from starting a request (including the TCP connect when the
    request opens a connection) to reading the whole answer.
    """

    def __init__(self, host: str, port: int, size: int, reconnect: Reconnect) -> None:
        self.host, self.port, self.size, self.reconnect = host, port, size, reconnect
        self._conns: list[_Connection | None] = [None] * size

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.host, self.port)
        return conn

    async def open(self) -> None:
        """Keep-alive mode only: open all connections up front."""
        if self.reconnect is Reconnect.NEVER:
            for i in range(self.size):
                self._conns[i] = await self._connect()

    def close(self) -> None:
        for i, conn in enumerate(self._conns):
            if conn is not None:
                conn.close()
            self._conns[i] = None

    async def _slot(self, i: int, rnd: _Round) -> None:
        templates = rnd.templates
        per_request = self.reconnect is Reconnect.REQUEST
        while not rnd.time_is_up():
            node = next(rnd.nodes, None)
            if node is None:
                return
            for position, tpl in enumerate(templates):
                started = time.perf_counter_ns()
                conn = self._conns[i]
                if conn is None or conn.transport is None:
                    conn = self._conns[i] = await self._connect()
                answer = await conn.request(tpl.render(node))
                stats = rnd.step_stats[position]
                stats.latencies_ns.append(time.perf_counter_ns() - started)
                ok = rnd.check(tpl, stats, answer)
                if per_request:
                    conn.close()
                    self._conns[i] = None
                if not ok:
                    break  # abandon the node: its server-side state is no longer known
                if position == len(templates) - 1:
                    rnd.stats.walks_completed += 1
                elif rnd.time_is_up():
                    break  # time is up: in-flight answers were counted, start nothing new
            if self.reconnect is Reconnect.WALK and self._conns[i] is not None:
                cast(_Connection, self._conns[i]).close()
                self._conns[i] = None

    async def run_round(
        self,
        templates: Sequence[Template],
        nodes: Iterator[Node],
        stats: PhaseStats,
        deadline: float | None,
    ) -> None:
        rnd = _Round(templates, nodes, stats, deadline)
        started = time.perf_counter()
        try:
            await asyncio.gather(*(self._slot(i, rnd) for i in range(self.size)))
        finally:
            stats.elapsed_s += time.perf_counter() - started
            stats.rounds += 1
