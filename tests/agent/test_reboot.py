"""Reboot strategies: table-driven decisions over time, and who is logged in."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from wellcar.agent.fleetlock_client import FleetLockRefusedError, FleetLockUnavailableError
from wellcar.agent.reboot import (
    USER_WARNING,
    Backoff,
    FleetLockRebootStrategy,
    ImmediateRebootStrategy,
    LoginSession,
    NoRebootStrategy,
    RebootAction,
    RebootStrategyError,
    logged_in_sessions,
    make_reboot_strategy,
    parse_loginctl_sessions,
    parse_utmp,
)

DAY = datetime(2026, 5, 4)  # a Monday


def at(hh_mm: str, day: int = 0) -> datetime:
    hour, minute = map(int, hh_mm.split(":"))
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


@dataclass(frozen=True)
class DailyWindow:
    """A daily reboot window, the shape wellcar.agent.config.RebootWindow has."""

    start: time
    length: timedelta

    def _offset(self, moment: datetime) -> timedelta:
        start = datetime.combine(moment.date(), self.start)
        return (moment - start) % timedelta(days=1)

    def contains(self, moment: datetime) -> bool:
        return self._offset(moment) < self.length

    def next_start(self, moment: datetime) -> datetime:
        offset = self._offset(moment)
        return moment if not offset else moment + (timedelta(days=1) - offset)


NIGHT = DailyWindow(time(2, 0), timedelta(hours=2))
CORE = LoginSession("core", "pts/0")


@dataclass(frozen=True)
class Step:
    now: datetime
    users: tuple[LoginSession, ...]
    action: RebootAction
    retry_at: datetime | None = None


@pytest.mark.parametrize(
    ("window", "steps", "warnings"),
    [
        pytest.param(None, [Step(at("13:00"), (), RebootAction.REBOOT)], 0, id="nobody-no-window"),
        pytest.param(
            NIGHT,
            [
                Step(at("13:00"), (), RebootAction.WAIT, at("02:00", day=1)),
                Step(at("02:00", day=1), (), RebootAction.REBOOT),
            ],
            0,
            id="waits-for-the-window",
        ),
        pytest.param(
            NIGHT,
            [
                Step(at("02:10"), (CORE,), RebootAction.WAIT, at("02:15")),
                Step(at("02:12"), (CORE,), RebootAction.WAIT, at("02:15")),  # warned once only
                Step(at("02:15"), (CORE,), RebootAction.REBOOT),
            ],
            1,
            id="warns-logged-in-users-and-waits-five-minutes",
        ),
        pytest.param(
            NIGHT,
            [
                Step(at("03:58"), (CORE,), RebootAction.WAIT, at("04:03")),
                Step(at("04:03"), (CORE,), RebootAction.REBOOT),  # promised, window or not
            ],
            1,
            id="a-warned-reboot-happens-even-after-the-window-closed",
        ),
        pytest.param(
            None,
            [
                Step(at("09:00"), (CORE, LoginSession("root", "tty1")), RebootAction.WAIT,
                     at("09:05")),
                Step(at("09:05"), (), RebootAction.REBOOT),
            ],
            1,
            id="several-users",
        ),
    ],
)  # fmt: skip
def test_the_reboot_strategy(window: DailyWindow | None, steps: list[Step], warnings: int) -> None:
    current: list[tuple[LoginSession, ...]] = [()]
    sent: list[str] = []
    strategy = ImmediateRebootStrategy(lambda: current[0], sent.append, window)
    for step in steps:
        current[0] = step.users
        decision = strategy.decide(step.now)
        assert (decision.action, decision.retry_at) == (step.action, step.retry_at), step
    assert sent == [USER_WARNING] * warnings
    strategy.before_reboot()
    assert strategy.after_boot(at("05:00")) is None


def test_after_a_reboot_users_are_warned_again_next_time() -> None:
    sent: list[str] = []
    strategy = ImmediateRebootStrategy(lambda: (CORE,), sent.append)
    strategy.decide(at("09:00"))
    assert strategy.decide(at("09:05")).action is RebootAction.REBOOT
    strategy.before_reboot()
    assert strategy.decide(at("10:00")).retry_at == at("10:05")
    assert len(sent) == 2


def test_off_never_reboots() -> None:
    strategy = NoRebootStrategy()
    for moment in (at("00:00"), at("12:00"), at("03:00", day=30)):
        decision = strategy.decide(moment)
        assert (decision.action, decision.retry_at) == (RebootAction.NEVER, None)
    assert strategy.after_boot(at("12:00")) is None


# ------------------------------------------------------------------------ fleet-lock


@dataclass
class FakeLock:
    """Answers pre_reboot/steady_state from a script of outcomes (None = 200)."""

    lock_answers: list[Exception | None] = field(default_factory=list)
    unlock_answers: list[Exception | None] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def pre_reboot(self) -> None:
        self.calls.append("lock")
        answer = self.lock_answers.pop(0) if self.lock_answers else None
        if answer is not None:
            raise answer

    def steady_state(self) -> None:
        self.calls.append("unlock")
        answer = self.unlock_answers.pop(0) if self.unlock_answers else None
        if answer is not None:
            raise answer


FULL = FleetLockRefusedError(409, "failed_lock", "semaphore is full", "pre-reboot")
DOWN = FleetLockUnavailableError("connection refused")


@pytest.mark.parametrize(
    ("answers", "asks", "expected"),
    [
        pytest.param([], [0], [(RebootAction.REBOOT, None)], id="granted"),
        pytest.param(
            [FULL, DOWN, FULL],
            [0, 5, 15, 35],
            [
                (RebootAction.WAIT, 5),
                (RebootAction.WAIT, 15),
                (RebootAction.WAIT, 35),
                (RebootAction.REBOOT, None),
            ],
            id="backs-off-5-10-20-seconds",
        ),
        pytest.param(
            [FULL],
            [0, 3, 5],
            [(RebootAction.WAIT, 5), (RebootAction.WAIT, 5), (RebootAction.REBOOT, None)],
            id="asking-early-does-not-call-the-server",
        ),
    ],
)
def test_fleet_lock_decisions(
    answers: list[Exception | None],
    asks: list[int],
    expected: list[tuple[RebootAction, int | None]],
) -> None:
    lock = FakeLock(list(answers))
    strategy = FleetLockRebootStrategy(lock)
    start = at("12:00")
    for second, (action, retry) in zip(asks, expected, strict=True):
        decision = strategy.decide(start + timedelta(seconds=second))
        wanted = start + timedelta(seconds=retry) if retry is not None else None
        assert (decision.action, decision.retry_at) == (action, wanted)
    assert lock.calls == ["lock"] * (len(answers) + 1)
    # Holding the lock: asking again reboots without another round trip.
    assert strategy.decide(start + timedelta(hours=1)).action is RebootAction.REBOOT
    assert lock.calls.count("lock") == len(answers) + 1


def test_fleet_lock_backoff_is_capped_at_five_minutes() -> None:
    strategy = FleetLockRebootStrategy(FakeLock([FULL] * 10))
    now, delays = at("12:00"), []
    for _ in range(10):
        decision = strategy.decide(now)
        assert decision.retry_at is not None
        delays.append((decision.retry_at - now).total_seconds())
        now = decision.retry_at
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]


def test_fleet_lock_waits_for_the_window_before_asking() -> None:
    lock = FakeLock()
    strategy = FleetLockRebootStrategy(lock, NIGHT)
    decision = strategy.decide(at("13:00"))
    assert (decision.action, decision.retry_at) == (RebootAction.WAIT, at("02:00", day=1))
    assert lock.calls == []
    assert strategy.decide(at("02:30", day=1)).action is RebootAction.REBOOT


def test_fleet_lock_is_released_after_boot_retrying_until_the_server_answers() -> None:
    lock = FakeLock(unlock_answers=[DOWN, DOWN, None])
    strategy = FleetLockRebootStrategy(lock)
    assert strategy.after_boot(at("12:00")) == at("12:00") + timedelta(seconds=5)
    assert strategy.after_boot(at("12:01")) == at("12:01") + timedelta(seconds=10)
    assert strategy.after_boot(at("12:02")) is None
    assert lock.calls == ["unlock"] * 3


def test_a_refusal_reason_is_passed_on() -> None:
    decision = FleetLockRebootStrategy(FakeLock([FULL])).decide(at("12:00"))
    assert "failed_lock: semaphore is full" in decision.reason


def test_backoff_resets_after_success() -> None:
    backoff = Backoff()
    assert [backoff.next_delay().total_seconds() for _ in range(3)] == [5, 10, 20]
    backoff.reset()
    assert backoff.next_delay() == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("reboot", ImmediateRebootStrategy),
        ("off", NoRebootStrategy),
        ("fleet-lock", FleetLockRebootStrategy),
        ("FLEET_LOCK", FleetLockRebootStrategy),  # Zincati's spelling
    ],
)
def test_strategies_by_name(name: str, kind: type) -> None:
    strategy = make_reboot_strategy(name, fleetlock=FakeLock())
    assert isinstance(strategy, kind)


@pytest.mark.parametrize("name", ["etcd-lock", "best-effort", "sometimes", ""])
def test_unknown_strategy_names_are_refused(name: str) -> None:
    with pytest.raises(RebootStrategyError, match="unknown reboot strategy"):
        make_reboot_strategy(name, fleetlock=FakeLock())


def test_fleet_lock_without_a_server_is_refused() -> None:
    with pytest.raises(RebootStrategyError, match="FleetLock server"):
        make_reboot_strategy("fleet-lock")


# --------------------------------------------------------------------- who is logged in

LOGINCTL_252 = """[{"session":"3","uid":500,"user":"core","seat":null,"tty":"pts/0"},
{"session":"c1","uid":0,"user":"root","seat":"seat0","tty":"tty1"}]"""
LOGINCTL_256 = """[
 {"session":"1","uid":500,"user":"core","seat":null,"leader":812,"class":"manager",
  "tty":null,"idle":false,"since":null},
 {"session":"4","uid":500,"user":"core","seat":null,"leader":820,"class":"user",
  "tty":"pts/0","idle":false,"since":null},
 {"session":"c2","uid":102,"user":"gdm","seat":"seat0","class":"greeter","tty":"tty1"}
]"""


@pytest.mark.parametrize(
    ("output", "sessions"),
    [
        (LOGINCTL_252, (LoginSession("core", "pts/0"), LoginSession("root", "tty1"))),
        (LOGINCTL_256, (LoginSession("core", "pts/0"),)),  # managers and greeters are no one
        ("[]", ()),
        ("", ()),
    ],
)
def test_loginctl_sessions(output: str, sessions: tuple[LoginSession, ...]) -> None:
    assert parse_loginctl_sessions(output) == sessions


def test_loginctl_output_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_loginctl_sessions('{"sessions": []}')


UTMP = struct.Struct("<hxxi32s4s32s256shhiii4i20s")


def utmp_record(kind: int, user: str, line: str = "", host: str = "") -> bytes:
    return UTMP.pack(
        kind, 1234, line.encode(), b"ts/0", user.encode(), host.encode(), 0, 0, 0, 0,
        0, 0, 0, 0, 0, b"",
    )  # fmt: skip


def test_utmp_user_processes_are_the_logged_in_users() -> None:
    assert UTMP.size == 384
    data = (
        utmp_record(2, "reboot", "~")  # BOOT_TIME
        + utmp_record(7, "core", "pts/0", "192.0.2.7")  # USER_PROCESS
        + utmp_record(8, "", "pts/1")  # DEAD_PROCESS: logged out
        + utmp_record(6, "LOGIN", "tty1")  # LOGIN_PROCESS: a getty, nobody yet
        + b"\0" * 100  # a torn last record is ignored
    )
    assert parse_utmp(data) == (LoginSession("core", "pts/0", "192.0.2.7"),)


def test_without_loginctl_utmp_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    utmp = tmp_path / "utmp"
    utmp.write_bytes(utmp_record(7, "admin", "pts/3"))
    assert logged_in_sessions(utmp) == (LoginSession("admin", "pts/3"),)
    assert logged_in_sessions(tmp_path / "missing") == ()  # cannot tell: nobody
