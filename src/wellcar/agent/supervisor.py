"""Starting the agent without ever restart-looping.

A configuration the agent cannot act on (an ``update.conf`` that does not parse, no payload
signing keys while updates are enabled, ``REBOOT_STRATEGY=fleet-lock`` without a URL, no
disk with A/B slots) does not end the process: systemd would only start it again every few
seconds, for ever. The agent stays up in a :class:`Blocked` state instead, says why in the
journal and in the persisted status (``wellcar agent status``, ``update_engine_client
-status``), and tries again with backoff (30 s, doubling, at most 1 h) or at once on SIGHUP
(``systemctl reload`` sends it), re-reading its configuration each time.

The start-up is a small state machine whose states carry their data (as Zincati's do)::

    Starting(attempt) --ok--> Ready(value)
    Starting(attempt) --config problem--> Blocked(reason, attempt, since, retry_at)
    Blocked --retry_at reached or SIGHUP--> Starting(attempt + 1)
    Blocked --SIGTERM/SIGINT--> Stopped

``SERVER=disabled`` is not a problem: the agent runs (it still assesses boots) and only
does not check. An unreachable server is not either: the update loop backs off by itself
(``schedule.next_delay``). Command-line mistakes (``--disk-image`` missing) and a second
agent on the same state directory still end the process with one error line.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Generic, TextIO, TypeVar

from wellcar.agent.config import default_state_dir, load_config
from wellcar.agent.control import take_agent_lock
from wellcar.agent.errors import AgentError
from wellcar.agent.slot_backend import SlotBackendError
from wellcar.agent.state_dir import StateDir
from wellcar.agent.status_store import AgentStatus, StatusStore
from wellcar.disk import DiskError
from wellcar.logline import log_fields

__all__ = [
    "BLOCKED_FIRST_RETRY",
    "BLOCKED_MAX_RETRY",
    "Blocked",
    "Ready",
    "Starting",
    "StartupGate",
    "Stopped",
    "blocked_retry_delay",
    "mark_blocked",
    "mark_unblocked",
]

log = logging.getLogger("wellcar.agent.run")

T = TypeVar("T")

BLOCKED_FIRST_RETRY = timedelta(seconds=30)
BLOCKED_MAX_RETRY = timedelta(hours=1)
# What makes the start-up wait instead of exit: the configuration or the machine is not
# usable yet. Anything else (a bug) still ends the process with the error.
BLOCKING_ERRORS: tuple[type[Exception], ...] = (AgentError, DiskError, SlotBackendError, OSError)


class FatalStartError(AgentError):
    """A start-up error that must end the process (a command-line mistake)."""


@dataclass(frozen=True)
class Starting:
    attempt: int  # 1 for the first try


@dataclass(frozen=True)
class Blocked:
    reason: str  # one line, as shown by `wellcar agent status`
    attempt: int
    since: datetime
    retry_at: datetime


@dataclass(frozen=True)
class Ready(Generic[T]):
    value: T  # what the start-up assembled (config, parts, ...)


@dataclass(frozen=True)
class Stopped:
    signal: str


def blocked_retry_delay(attempt: int) -> timedelta:
    """30 s after the first failed attempt, doubling, at most 1 h."""
    return min(BLOCKED_FIRST_RETRY * (1 << min(max(0, attempt - 1), 20)), BLOCKED_MAX_RETRY)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _status_store(root: Path, brand: str) -> StatusStore:
    """The status file, from update.conf's STATE_DIR if it can be read, else the default."""
    try:
        state_dir = load_config(root, brand).state_dir
    except AgentError:
        state_dir = default_state_dir(root, brand)
    return StatusStore(StateDir(state_dir).status)


def mark_blocked(store: StatusStore, blocked: Blocked) -> AgentStatus:
    status = store.load()
    since = status.blocked_since if status.blocked_reason == blocked.reason else None
    status = replace(
        status,
        blocked_reason=blocked.reason,
        blocked_since=since or blocked.since,
        next_check_time=blocked.retry_at,
    )
    store.save(status)
    return status


def mark_unblocked(store: StatusStore) -> None:
    status = store.load()
    if status.blocked_reason is not None or status.next_check_time is not None:
        store.save(replace(status, blocked_reason=None, blocked_since=None, next_check_time=None))


def _keep_running_on_sighup() -> None:
    # SIGHUP's default action would end the running agent (and systemd counts it as a
    # clean stop: no restart). Once running, the configuration is re-read on restart.
    def on_hup(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGHUP ignored: the agent is running; restart it to re-read update.conf")

    with contextlib.suppress(ValueError):  # not the main thread (tests)
        signal.signal(signal.SIGHUP, on_hup)


class StartupGate:
    """Runs ``assemble`` until it succeeds, waiting in :class:`Blocked` between tries.

    ``assemble`` loads the configuration and builds the agent's parts; it raises for a
    configuration it cannot act on. :meth:`wait_until_ready` returns what it built, or
    None when SIGTERM/SIGINT came while blocked (the process then exits 0: a stop is not
    a failure).
    """

    def __init__(
        self,
        root: Path,
        brand: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        delay: Callable[[int], timedelta] = blocked_retry_delay,
    ) -> None:
        self.root = root
        self.brand = brand
        self.now = now
        self.delay = delay
        self.state: Starting | Blocked | Ready[object] | Stopped = Starting(1)
        self._last_blocked: Blocked | None = None
        self._lock: TextIO | None = None
        self._wake = threading.Event()
        self._stop: str | None = None

    # -- signals (only while waiting; the running agent installs its own handlers)

    def retry_now(self) -> None:
        self._wake.set()

    def stop(self, why: str) -> None:
        self._stop = why
        self._wake.set()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGHUP:
                self.retry_now()
            else:
                self.stop(signal.Signals(signum).name)

        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        try:
            previous = {s: signal.signal(s, on_signal) for s in handled}
        except ValueError:  # not the main thread (tests): no signals, only stop()
            yield
            return
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- the machine

    def wait_until_ready(self, assemble: Callable[[], T]) -> T | None:
        with self._signals():
            value = self._until_ready(assemble)
        if isinstance(self.state, Ready):
            _keep_running_on_sighup()
        return value

    def _until_ready(self, assemble: Callable[[], T]) -> T | None:
        try:
            return self._attempts(assemble)
        finally:
            self._release_lock()  # the running agent's control server takes it again

    def _hold_lock(self, state_dir: Path) -> None:
        # While blocked, the lock tells `wellcar agent status` that an agent is up (and
        # its pid), and keeps a second agent from starting on the same state directory.
        if self._lock is None:
            self._lock = take_agent_lock(state_dir)

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    def _attempts(self, assemble: Callable[[], T]) -> T | None:
        attempt = 1
        while True:
            self.state = Starting(attempt)
            try:
                value = assemble()
            except FatalStartError:
                raise
            except BLOCKING_ERRORS as exc:
                blocked = self._block(exc, attempt)
                self._wake.wait(max(0.0, (blocked.retry_at - self.now()).total_seconds()))
                self._wake.clear()
                if self._stop is not None:
                    self.state = Stopped(self._stop)
                    log.info("agent stopped while blocked")
                    return None
                attempt += 1
                continue
            if attempt > 1:
                log.info("the configuration can be acted on now: starting")
            # A blocked reason saved by this or an earlier process is over.
            with contextlib.suppress(OSError):
                mark_unblocked(_status_store(self.root, self.brand))
            self.state = Ready(value)
            return value

    def _block(self, exc: BaseException, attempt: int) -> Blocked:
        now = self.now()
        since = self._last_blocked.since if self._last_blocked is not None else now
        blocked = Blocked(_one_line(exc), attempt, since, now + self.delay(attempt))
        self.state = self._last_blocked = blocked
        store = _status_store(self.root, self.brand)
        self._hold_lock(store.path.parent)  # another agent there: ends the process
        try:
            mark_blocked(store, blocked)
        except OSError as save_error:
            log.warning("cannot save the blocked status", extra=log_fields(error=save_error))
        log.error(
            "agent blocked: it tries again at retry_at, or at once on SIGHUP",
            extra=log_fields(reason=blocked.reason, retry_at=blocked.retry_at.isoformat()),
        )
        return blocked
