"""Reboot strategies: when the node may reboot into an installed update.

One interface, :class:`RebootStrategy`: the daemon calls :meth:`~RebootStrategy.decide`
with the current time whenever an update waits for a reboot and gets a
:class:`RebootDecision` (reboot now, ask again at a given time, or never by itself), calls
:meth:`~RebootStrategy.before_reboot` just before rebooting and
:meth:`~RebootStrategy.after_boot` once the new boot was assessed good. The strategies are
locksmith's (``REBOOT_STRATEGY``):

- ``reboot``: wait for the reboot window; if somebody is logged in, warn them and reboot
  five minutes later (as locksmith does);
- ``off``: never reboot; the daemon reports the pending update and waits for a human;
- ``fleet-lock``: take a FleetLock slot before rebooting (retrying with backoff 5 s → 5 min
  while the server refuses or cannot be reached) and give it back once the node is in
  steady state after the reboot.

The logic is pure apart from the injected collaborators (logged-in sessions, notifier,
FleetLock client); time comes in as an argument.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from wellcar.logline import log_fields

from .fleetlock_client import FleetLockError

log = logging.getLogger(__name__)

USER_WARNING_DELAY = timedelta(minutes=5)
USER_WARNING = "System reboot in 5 minutes! (an installed OS update needs it)"
LOCK_RETRY_FIRST = timedelta(seconds=5)
LOCK_RETRY_MAX = timedelta(minutes=5)


# ------------------------------------------------------------------------------ errors


class RebootStrategyError(Exception):
    """An unknown strategy name, or a strategy missing what it needs."""


# ---------------------------------------------------------------------- collaborators


class RebootWindowLike(Protocol):
    """What a reboot window offers (``wellcar.agent.reboot_window.RebootWindow`` has it)."""

    def contains(self, moment: datetime, /) -> bool: ...

    def next_start(self, moment: datetime, /) -> datetime: ...


class FleetLockApi(Protocol):
    """The two FleetLock calls (``FleetLockClient``); both raise FleetLockError."""

    def pre_reboot(self) -> None: ...

    def steady_state(self) -> None: ...


@dataclass(frozen=True)
class LoginSession:
    user: str
    tty: str | None = None
    remote_host: str | None = None


SessionLister = Callable[[], Sequence[LoginSession]]
Notifier = Callable[[str], None]


def parse_loginctl_sessions(text: str) -> tuple[LoginSession, ...]:
    """Sessions from ``loginctl list-sessions --output=json``.

    Only people count: systemd 256+ also lists each user's service manager as a session
    of class ``manager``, and greeters and lock screens have classes of their own.
    """
    document = json.loads(text or "[]")
    if not isinstance(document, list):
        raise ValueError("loginctl JSON output is not a list")
    sessions = []
    for item in document:
        if not isinstance(item, dict) or not isinstance(item.get("user"), str):
            continue
        session_class = item.get("class")
        if session_class is not None and not str(session_class).startswith("user"):
            continue
        tty = item.get("tty")
        sessions.append(LoginSession(item["user"], tty if isinstance(tty, str) and tty else None))
    return tuple(sessions)


# glibc's struct utmp on Linux (x86-64, aarch64): 384 bytes per record.
_UTMP_RECORD = struct.Struct("<hxxi32s4s32s256shhiii4i20s")
_UTMP_USER_PROCESS = 7


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def parse_utmp(data: bytes) -> tuple[LoginSession, ...]:
    """Logged-in users from the bytes of ``/run/utmp`` (USER_PROCESS records)."""
    sessions = []
    for offset in range(0, len(data) - _UTMP_RECORD.size + 1, _UTMP_RECORD.size):
        kind, _pid, line, _id, user, host, *_ = _UTMP_RECORD.unpack_from(data, offset)
        if kind == _UTMP_USER_PROCESS and _c_string(user):
            sessions.append(
                LoginSession(_c_string(user), _c_string(line) or None, _c_string(host) or None)
            )
    return tuple(sessions)


def logged_in_sessions(utmp: Path = Path("/run/utmp")) -> tuple[LoginSession, ...]:
    """Who is logged in: logind if it answers, else utmp; nobody if neither can tell."""
    loginctl = shutil.which("loginctl")
    if loginctl is not None:
        try:
            done = subprocess.run(
                [loginctl, "list-sessions", "--output=json", "--no-pager"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            return parse_loginctl_sessions(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            log.info(
                "loginctl list-sessions failed; reading utmp",
                extra=log_fields(error=exc, path=utmp),
            )
    try:
        return parse_utmp(utmp.read_bytes())
    except OSError as exc:
        log.warning(
            "cannot tell who is logged in: rebooting without a warning",
            extra=log_fields(error=exc),
        )
        return ()


def wall_notifier(message: str) -> None:
    """Broadcast ``message`` to every terminal, as locksmith does, with ``wall``."""
    try:
        subprocess.run(["wall"], input=message, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not warn logged-in users with wall", extra=log_fields(error=exc))


# -------------------------------------------------------------------------- decisions


class RebootAction(StrEnum):
    REBOOT = "reboot"  # reboot now (after before_reboot())
    WAIT = "wait"  # ask again at retry_at
    NEVER = "never"  # this strategy never reboots by itself


@dataclass(frozen=True)
class RebootDecision:
    action: RebootAction
    reason: str
    retry_at: datetime | None = None  # set for WAIT

    @classmethod
    def reboot(cls, reason: str) -> RebootDecision:
        return cls(RebootAction.REBOOT, reason)

    @classmethod
    def wait(cls, until: datetime, reason: str) -> RebootDecision:
        return cls(RebootAction.WAIT, reason, until)

    @classmethod
    def never(cls, reason: str) -> RebootDecision:
        return cls(RebootAction.NEVER, reason)


class RebootStrategy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, now: datetime) -> RebootDecision:
        """An update waits for a reboot: may the node reboot at ``now``?"""
        ...

    def before_reboot(self) -> None: ...

    def after_boot(self, now: datetime) -> datetime | None:
        """The node is in steady state after a boot. Returns None when done, or when to
        call again because something (the FleetLock server) could not be reached."""
        ...


def _outside_window(window: RebootWindowLike | None, now: datetime) -> RebootDecision | None:
    if window is None or window.contains(now):
        return None
    start = window.next_start(now)
    return RebootDecision.wait(start, f"outside the reboot window; it opens at {start:%c}")


@dataclass
class Backoff:
    """Doubling delays from ``first`` up to ``maximum``; :meth:`reset` after a success."""

    first: timedelta = LOCK_RETRY_FIRST
    maximum: timedelta = LOCK_RETRY_MAX
    _next: timedelta | None = None

    def next_delay(self) -> timedelta:
        delay = self._next or self.first
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = None


@dataclass
class ImmediateRebootStrategy:
    """``reboot``: inside the window, reboot; warn logged-in users five minutes first.

    Once users were warned the reboot happens after the delay even if the window has
    closed in the meantime: they were promised it (locksmith behaves the same way).
    """

    sessions: SessionLister = logged_in_sessions
    notify: Notifier = wall_notifier
    window: RebootWindowLike | None = None
    warning_delay: timedelta = USER_WARNING_DELAY
    warning: str = USER_WARNING
    _warned_at: datetime | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        return "reboot"

    def decide(self, now: datetime) -> RebootDecision:
        if self._warned_at is not None:
            due = self._warned_at + self.warning_delay
            if now >= due:
                return RebootDecision.reboot(f"logged-in users were warned at {self._warned_at}")
            return RebootDecision.wait(due, "waiting after warning logged-in users")
        waiting = _outside_window(self.window, now)
        if waiting is not None:
            return waiting
        users = self.sessions()
        if not users:
            return RebootDecision.reboot("nobody is logged in")
        self.notify(self.warning)
        self._warned_at = now
        names = ", ".join(sorted({s.user for s in users}))
        return RebootDecision.wait(
            now + self.warning_delay, f"warned logged-in users ({names}); rebooting after delay"
        )

    def before_reboot(self) -> None:
        self._warned_at = None

    def after_boot(self, now: datetime) -> datetime | None:
        return None


@dataclass
class NoRebootStrategy:
    """``off``: the update waits for someone to reboot the node."""

    @property
    def name(self) -> str:
        return "off"

    def decide(self, now: datetime) -> RebootDecision:
        return RebootDecision.never("REBOOT_STRATEGY=off: reboot the node to finish the update")

    def before_reboot(self) -> None:
        return None

    def after_boot(self, now: datetime) -> datetime | None:
        return None


@dataclass
class FleetLockRebootStrategy:
    """``fleet-lock``: reboot only while holding one of the fleet's reboot slots.

    The lock is recursive on the server (the same node id may take it again), so a daemon
    restarted between taking it and rebooting simply takes it again.
    """

    client: FleetLockApi
    window: RebootWindowLike | None = None
    lock_backoff: Backoff = field(default_factory=Backoff)
    release_backoff: Backoff = field(default_factory=Backoff)
    _holding: bool = field(default=False, init=False)
    _next_attempt: datetime | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        return "fleet-lock"

    def decide(self, now: datetime) -> RebootDecision:
        if self._holding:
            return RebootDecision.reboot("holding the fleet reboot lock")
        waiting = _outside_window(self.window, now)
        if waiting is not None:
            return waiting
        if self._next_attempt is not None and now < self._next_attempt:
            return RebootDecision.wait(self._next_attempt, "backing off before asking again")
        try:
            self.client.pre_reboot()
        except FleetLockError as exc:
            self._next_attempt = now + self.lock_backoff.next_delay()
            return RebootDecision.wait(self._next_attempt, f"fleet reboot lock not taken: {exc}")
        self._holding, self._next_attempt = True, None
        self.lock_backoff.reset()
        return RebootDecision.reboot("took the fleet reboot lock")

    def before_reboot(self) -> None:
        return None

    def after_boot(self, now: datetime) -> datetime | None:
        try:
            self.client.steady_state()
        except FleetLockError as exc:
            retry_at = now + self.release_backoff.next_delay()
            log.warning(
                "could not release the fleet reboot lock",
                extra=log_fields(error=exc, retry_at=retry_at),
            )
            return retry_at
        self._holding = False
        self.release_backoff.reset()
        return None


def make_reboot_strategy(
    name: str,
    *,
    window: RebootWindowLike | None = None,
    fleetlock: FleetLockApi | None = None,
    sessions: SessionLister = logged_in_sessions,
    notify: Notifier = wall_notifier,
) -> RebootStrategy:
    """The strategy for a ``REBOOT_STRATEGY`` value (``reboot``, ``off``, ``fleet-lock``)."""
    key = name.strip().lower().replace("_", "-")
    if key == "reboot":
        return ImmediateRebootStrategy(sessions, notify, window)
    if key == "off":
        return NoRebootStrategy()
    if key == "fleet-lock":
        if fleetlock is None:
            raise RebootStrategyError("REBOOT_STRATEGY=fleet-lock needs a FleetLock server URL")
        return FleetLockRebootStrategy(fleetlock, window)
    raise RebootStrategyError(
        f"unknown reboot strategy {name[:40]!r}: use reboot, off or fleet-lock"
    )
