"""The rollout policy: may this instance start an update now?

A pure function over the group's policy and counts of its instances, so each rule
is tested table by table. Semantics are Nebraska's `enforceRolloutPolicy`; the only
addition is that office hours are a configurable spec instead of Mon-Fri 9-17.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from wellcar.server.office_hours import DEFAULT_SPEC, in_office_hours

# Nebraska skips all counting when a group allows this many updates and safe mode is off.
UNLIMITED_UPDATES = 900_000
# Only instances seen within this window count (Nebraska's validity interval).
ACTIVITY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    updates_enabled: bool = True
    safe_mode: bool = True
    office_hours: bool = False
    timezone: str | None = None
    office_hours_spec: str = DEFAULT_SPEC
    period_interval: timedelta = timedelta(minutes=15)
    max_updates_per_period: int = 2
    update_timeout: timedelta = timedelta(minutes=60)

    @property
    def needs_counts(self) -> bool:
        return self.safe_mode or self.max_updates_per_period < UNLIMITED_UPDATES


@dataclass(frozen=True, slots=True)
class RolloutCounts:
    """Counts over the group's instances seen in the last 24 h."""

    granted_in_last_period: int = 0  # granted less than period_interval ago
    in_progress: int = 0  # updating, granted at most update_timeout ago
    timed_out: int = 0  # updating, granted more than update_timeout ago
    attempted: int = 0  # finished an attempt at the channel's version (success or not)


class Verdict(Enum):
    GRANT = "grant"
    UPDATES_DISABLED = "error-updatesDisabled"
    MAX_UPDATES_PER_PERIOD = "error-maxUpdatesPerPeriodLimitReached"
    MAX_CONCURRENT_UPDATES = "error-maxConcurrentUpdatesLimitReached"
    MAX_TIMED_OUT_UPDATES = "error-maxTimedOutUpdatesLimitReached"

    @property
    def omaha_status(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    verdict: Verdict
    hold_instance: bool = False  # set the instance OnHold
    disable_group_updates: bool = False  # safe mode tripped: stop the group's rollout

    @property
    def granted(self) -> bool:
        return self.verdict is Verdict.GRANT


GRANT = RolloutDecision(Verdict.GRANT)


def effective_max_updates(policy: RolloutPolicy, counts: RolloutCounts) -> int:
    # Safe mode lets exactly one instance go first, until one attempt has finished.
    if policy.safe_mode and counts.attempted == 0:
        return 1
    return policy.max_updates_per_period


def decide_rollout(
    policy: RolloutPolicy, counts: RolloutCounts | None, now_utc: datetime
) -> RolloutDecision:
    """Decide one update grant. `counts` may be None only when `policy.needs_counts` is false."""
    if not policy.updates_enabled:
        return RolloutDecision(Verdict.UPDATES_DISABLED)
    if policy.office_hours and not in_office_hours(
        now_utc, policy.timezone, policy.office_hours_spec
    ):
        return RolloutDecision(Verdict.UPDATES_DISABLED)
    if not policy.needs_counts:
        return GRANT
    if counts is None:
        raise ValueError("this policy limits updates: counts are required")
    limit = effective_max_updates(policy, counts)
    if counts.granted_in_last_period >= limit:
        return RolloutDecision(Verdict.MAX_UPDATES_PER_PERIOD, hold_instance=True)
    if counts.in_progress >= limit:
        return RolloutDecision(Verdict.MAX_CONCURRENT_UPDATES, hold_instance=True)
    if policy.safe_mode and counts.timed_out >= limit:
        return RolloutDecision(
            Verdict.MAX_TIMED_OUT_UPDATES, hold_instance=True, disable_group_updates=True
        )
    return GRANT
