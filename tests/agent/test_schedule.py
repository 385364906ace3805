"""Check scheduling: initial delay, interval, fuzz, PollInterval and backoff."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from wellcar.agent.config import AgentConfig
from wellcar.agent.errors import (
    OmahaExchangeError,
    OmahaHTTPError,
    ServerUnreachable,
)
from wellcar.agent.schedule import CheckSchedule, is_backoff_error, next_failure_count

MIN = timedelta(minutes=1)
DEFAULT = CheckSchedule()


class FixedRandom(random.Random):
    """uniform() always returns the low, middle or high end of the range."""

    def __init__(self, where: float) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


LOW, MID, HIGH = FixedRandom(0.0), FixedRandom(0.5), FixedRandom(1.0)


@pytest.mark.parametrize(("rng", "expected"), [(LOW, 2 * MIN), (MID, 7 * MIN), (HIGH, 12 * MIN)])
def test_first_check_is_seven_minutes_plus_minus_five(
    rng: random.Random, expected: timedelta
) -> None:
    assert DEFAULT.first_delay(rng) == expected


@pytest.mark.parametrize(
    ("failures", "poll", "rng", "expected"),
    [
        (0, None, LOW, 40 * MIN),
        (0, None, MID, 45 * MIN),
        (0, None, HIGH, 50 * MIN),
        # Server PollInterval replaces the interval...
        (0, 2 * 60 * MIN, MID, 120 * MIN),
        # ...but cannot make nodes poll faster than configured, nor slower than the cap.
        (0, 5 * MIN, MID, 45 * MIN),
        (0, 24 * 60 * MIN, MID, 240 * MIN),
        (0, timedelta(0), MID, 45 * MIN),
        # Doubling per consecutive server failure, capped at 4 h.
        (1, None, MID, 90 * MIN),
        (2, None, MID, 180 * MIN),
        (3, None, MID, 240 * MIN),
        (50, None, MID, 240 * MIN),
        (10_000, None, MID, 240 * MIN),
        (1, 100 * MIN, MID, 200 * MIN),
        # Fuzz still applies on top of the cap.
        (5, None, HIGH, 245 * MIN),
    ],
)
def test_next_delay(
    failures: int, poll: timedelta | None, rng: random.Random, expected: timedelta
) -> None:
    assert DEFAULT.next_delay(rng, consecutive_failures=failures, poll_interval=poll) == expected


def test_delays_never_negative_and_spread() -> None:
    schedule = CheckSchedule(
        initial_delay=timedelta(seconds=1), interval=timedelta(seconds=2), fuzz=timedelta(seconds=5)
    )
    rng = random.Random(42)
    firsts = [schedule.first_delay(rng) for _ in range(500)]
    assert min(firsts) == timedelta(0)  # clamped, not negative
    assert max(firsts) <= timedelta(seconds=6)
    nexts = {schedule.next_delay(rng) for _ in range(100)}
    assert len(nexts) > 50  # fuzz really spreads a fleet


def test_same_seed_same_schedule() -> None:
    a = [DEFAULT.next_delay(random.Random(7)) for _ in range(3)]
    b = [DEFAULT.next_delay(random.Random(7)) for _ in range(3)]
    assert a == b


def test_max_backoff_below_interval_keeps_the_interval() -> None:
    schedule = CheckSchedule(interval=10 * MIN, fuzz=timedelta(0), max_backoff=5 * MIN)
    assert schedule.next_delay(MID, consecutive_failures=3) == 10 * MIN


def test_from_config() -> None:
    cfg = AgentConfig(
        check_initial_delay=timedelta(seconds=1),
        check_interval=timedelta(seconds=2),
        check_fuzz=timedelta(0),
        max_backoff=timedelta(seconds=8),
    )
    schedule = CheckSchedule.from_config(cfg)
    assert schedule.first_delay(MID) == timedelta(seconds=1)
    assert [schedule.next_delay(MID, consecutive_failures=n).seconds for n in range(5)] == [
        2,
        4,
        8,
        8,
        8,
    ]


@pytest.mark.parametrize(
    ("error", "backoff"),
    [
        (None, False),
        (ServerUnreachable("down"), True),
        (OmahaHTTPError(500, "u"), True),
        (OmahaHTTPError(503, "u"), True),
        (OmahaHTTPError(429, "u"), True),
        (OmahaHTTPError(404, "u"), False),
        (OmahaHTTPError(400, "u"), False),
        (OmahaExchangeError("garbage"), False),
        (ValueError("x"), False),
    ],
)
def test_which_errors_back_off(error: BaseException | None, backoff: bool) -> None:
    assert is_backoff_error(error) is backoff
    assert next_failure_count(3, error) == (4 if backoff else 0)
