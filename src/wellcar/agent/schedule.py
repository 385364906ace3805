"""When to check for updates: update_engine's ``update_check_scheduler``.

Pure functions of (configuration, what happened, a random number generator) so
the daemon's timing can be table-tested without a clock:

* the first check comes ``initial_delay ± fuzz`` after start (7 min ± 5);
* then every ``interval ± fuzz`` (45 min ± 5), while idle and while waiting
  for a reboot;
* a server ``PollInterval`` replaces the interval, but never below it (a
  server cannot make a fleet poll faster than configured -- update_engine
  floors it the same way) and never above ``max_backoff``;
* while the server fails (HTTP 5xx or 429, or is unreachable) the interval
  doubles per consecutive failure up to ``max_backoff`` (4 h); any other
  outcome resets the count (update_engine backs off on 500/503 only).

The fuzz spreads a fleet's checks so that a restart of many nodes at once
does not turn into synchronized load on the server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from .config import AgentConfig
from .errors import OmahaHTTPError, ServerUnreachable

__all__ = ["CheckSchedule", "is_backoff_error", "next_failure_count"]


def is_backoff_error(error: BaseException | None) -> bool:
    """Does ``error`` say "the server is down or overloaded"?"""
    if isinstance(error, ServerUnreachable):
        return True
    return isinstance(error, OmahaHTTPError) and error.is_server_error


def next_failure_count(current: int, error: BaseException | None) -> int:
    """The consecutive-server-failure count after a check that ended with
    ``error`` (None = success)."""
    return current + 1 if is_backoff_error(error) else 0


@dataclass(frozen=True, slots=True)
class CheckSchedule:
    initial_delay: timedelta = timedelta(minutes=7)
    interval: timedelta = timedelta(minutes=45)
    fuzz: timedelta = timedelta(minutes=5)
    max_backoff: timedelta = timedelta(hours=4)

    @classmethod
    def from_config(cls, config: AgentConfig) -> CheckSchedule:
        return cls(
            initial_delay=config.check_initial_delay,
            interval=config.check_interval,
            fuzz=config.check_fuzz,
            max_backoff=config.max_backoff,
        )

    def _fuzzed(self, base: timedelta, rng: random.Random) -> timedelta:
        spread = self.fuzz.total_seconds()
        seconds = base.total_seconds() + rng.uniform(-spread, spread)
        return timedelta(seconds=max(0.0, seconds))

    def first_delay(self, rng: random.Random) -> timedelta:
        """Delay from agent start to the first check."""
        return self._fuzzed(self.initial_delay, rng)

    def base_interval(
        self, *, consecutive_failures: int = 0, poll_interval: timedelta | None = None
    ) -> timedelta:
        """The interval before fuzz: the configured one, or the server's
        ``PollInterval`` clamped to [interval, max_backoff], doubled per
        consecutive server failure and capped at ``max_backoff`` (but never
        below the configured interval, even if ``max_backoff`` is smaller)."""
        base = self.interval
        ceiling = max(self.interval, self.max_backoff)
        if poll_interval is not None and poll_interval > timedelta(0):
            base = min(max(poll_interval, self.interval), ceiling)
        if consecutive_failures > 0:
            # Cap the exponent first: 2**n of a huge n would overflow timedelta.
            factor = 2 ** min(consecutive_failures, 32)
            base = min(base * factor, ceiling)
        return base

    def next_delay(
        self,
        rng: random.Random,
        *,
        consecutive_failures: int = 0,
        poll_interval: timedelta | None = None,
    ) -> timedelta:
        """Delay from the end of one check to the next."""
        base = self.base_interval(
            consecutive_failures=consecutive_failures, poll_interval=poll_interval
        )
        return self._fuzzed(base, rng)
