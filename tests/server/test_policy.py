"""The rollout decision, rule by rule (Nebraska's enforceRolloutPolicy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wellcar.server.policy import RolloutCounts, RolloutPolicy, Verdict, decide_rollout

WED_10_UTC = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
SAT_10_UTC = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

P = RolloutPolicy
C = RolloutCounts


@pytest.mark.parametrize(
    ("policy", "counts", "verdict", "hold", "disable"),
    [
        # updates disabled wins over everything
        (P(updates_enabled=False), C(), Verdict.UPDATES_DISABLED, False, False),
        # unlimited and no safe mode: no counting at all
        (P(safe_mode=False, max_updates_per_period=999_999), None, Verdict.GRANT, False, False),
        # safe mode: only one at a time until one attempt finished
        (
            P(safe_mode=True, max_updates_per_period=5),
            C(granted_in_last_period=0),
            Verdict.GRANT,
            False,
            False,
        ),
        (
            P(safe_mode=True, max_updates_per_period=5),
            C(granted_in_last_period=1),
            Verdict.MAX_UPDATES_PER_PERIOD,
            True,
            False,
        ),
        (
            P(safe_mode=True, max_updates_per_period=5),
            C(granted_in_last_period=1, attempted=1),
            Verdict.GRANT,
            False,
            False,
        ),
        # the period limit
        (
            P(safe_mode=False, max_updates_per_period=2),
            C(granted_in_last_period=1),
            Verdict.GRANT,
            False,
            False,
        ),
        (
            P(safe_mode=False, max_updates_per_period=2),
            C(granted_in_last_period=2),
            Verdict.MAX_UPDATES_PER_PERIOD,
            True,
            False,
        ),
        # the concurrency limit, once the period has rolled over
        (
            P(safe_mode=False, max_updates_per_period=2),
            C(in_progress=2),
            Verdict.MAX_CONCURRENT_UPDATES,
            True,
            False,
        ),
        (
            P(safe_mode=False, max_updates_per_period=2),
            C(in_progress=1, timed_out=5),
            Verdict.GRANT,
            False,
            False,
        ),
        # timed-out updates stop the group, but only in safe mode
        (
            P(safe_mode=True, max_updates_per_period=2),
            C(attempted=1, timed_out=2),
            Verdict.MAX_TIMED_OUT_UPDATES,
            True,
            True,
        ),
        (
            P(safe_mode=True, max_updates_per_period=2),
            C(attempted=1, timed_out=1),
            Verdict.GRANT,
            False,
            False,
        ),
        # effective max 1 in safe mode applies to timeouts too
        (
            P(safe_mode=True, max_updates_per_period=5),
            C(timed_out=1),
            Verdict.MAX_TIMED_OUT_UPDATES,
            True,
            True,
        ),
        # order of the rules: period before concurrency before timeouts
        (
            P(safe_mode=True, max_updates_per_period=1),
            C(attempted=1, granted_in_last_period=1, in_progress=1, timed_out=1),
            Verdict.MAX_UPDATES_PER_PERIOD,
            True,
            False,
        ),
        (
            P(safe_mode=True, max_updates_per_period=1),
            C(attempted=1, in_progress=1, timed_out=1),
            Verdict.MAX_CONCURRENT_UPDATES,
            True,
            False,
        ),
    ],
)
def test_rules(
    policy: RolloutPolicy, counts: RolloutCounts | None, verdict: Verdict, hold: bool, disable: bool
) -> None:
    decision = decide_rollout(policy, counts, WED_10_UTC)
    assert decision.verdict is verdict
    assert decision.hold_instance is hold
    assert decision.disable_group_updates is disable


def test_counts_required_when_limited() -> None:
    with pytest.raises(ValueError, match="counts are required"):
        decide_rollout(P(safe_mode=False, max_updates_per_period=3), None, WED_10_UTC)


@pytest.mark.parametrize(
    ("tz", "spec", "when", "open_"),
    [
        ("UTC", "mon-fri 09:00-17:00", WED_10_UTC, True),
        ("UTC", "mon-fri 09:00-17:00", SAT_10_UTC, False),
        # 10:00 UTC is 19:00 in Tokyo: after office hours there
        ("Asia/Tokyo", "mon-fri 09:00-17:00", WED_10_UTC, False),
        # 10:00 UTC is 05:00 in New York
        ("America/New_York", "mon-fri 09:00-17:00", WED_10_UTC, False),
        ("America/New_York", "mon-fri 04:00-06:00", WED_10_UTC, True),
        # configurable days: weekends only
        ("UTC", "sat-sun 00:00-24:00", SAT_10_UTC, True),
        ("UTC", "sat-sun 00:00-24:00", WED_10_UTC, False),
        # an overnight window that starts Tuesday 22:00 covers Wednesday 03:00
        ("UTC", "tue 22:00-06:00", datetime(2026, 11, 18, 3, 0, tzinfo=UTC), True),
        ("UTC", "tue 22:00-06:00", datetime(2026, 11, 18, 7, 0, tzinfo=UTC), False),
        ("UTC", "tue 22:00-06:00", datetime(2026, 11, 17, 23, 0, tzinfo=UTC), True),
        # an unknown time zone never counts as office hours (Nebraska)
        ("Mars/Olympus", "mon-fri 09:00-17:00", WED_10_UTC, False),
        (None, "mon-fri 09:00-17:00", WED_10_UTC, False),
    ],
)
def test_office_hours(tz: str | None, spec: str, when: datetime, open_: bool) -> None:
    policy = P(
        safe_mode=False,
        max_updates_per_period=999_999,
        office_hours=True,
        timezone=tz,
        office_hours_spec=spec,
    )
    verdict = decide_rollout(policy, None, when).verdict
    assert verdict is (Verdict.GRANT if open_ else Verdict.UPDATES_DISABLED)


def test_office_hours_off_ignores_time() -> None:
    policy = P(safe_mode=False, max_updates_per_period=999_999, office_hours=False)
    assert decide_rollout(policy, None, SAT_10_UTC + timedelta(hours=13)).granted
