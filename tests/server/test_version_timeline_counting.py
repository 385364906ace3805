"""The version timeline's counting (difference arrays) against the rule written out
plainly: at each time, each instance under the version it ran then."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from wellcar.server.data.stats import _Completion, versions_per_span

T0 = datetime(2026, 11, 1)
SPANS = [T0 + timedelta(hours=6 * i) for i in range(12)]
VERSIONS = ["1.0.0", "2.0.0", "3.0.0", "3.1.0-nightly", "0.0.0.0", ""]


def by_the_rule(
    spans: list[datetime],
    instances: list[tuple[str, str, datetime]],
    history: dict[str, list[_Completion]],
) -> list[dict[str, int]]:
    counts: list[dict[str, int]] = [{} for _ in spans]
    for instance_id, version, created in instances:
        completions = history.get(instance_id, [])
        for i, at in enumerate(spans):
            if created > at:
                continue  # not registered yet
            done = [c for c in completions if c.at <= at]
            if done:
                ran: str | None = done[-1].version
            elif completions:
                previous = completions[0].previous
                ran = None if not previous or previous == "0.0.0.0" else previous
            else:
                ran = version
            if ran and "nightly" not in ran:
                counts[i][ran] = counts[i].get(ran, 0) + 1
    return counts


moments = st.integers(min_value=-20, max_value=80).map(lambda h: T0 + timedelta(hours=h))
completion = st.builds(_Completion, moments, st.sampled_from(VERSIONS),
                       st.none() | st.sampled_from(VERSIONS))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(VERSIONS), moments, st.lists(completion, max_size=4)),
        max_size=12,
    )
)
def test_the_difference_arrays_count_as_the_rule_says(
    fleet: list[tuple[str, datetime, list[_Completion]]],
) -> None:
    instances = [(f"m{i}", version, created) for i, (version, created, _) in enumerate(fleet)]
    history = {
        f"m{i}": sorted(completions, key=lambda c: c.at)
        for i, (_, _, completions) in enumerate(fleet)
        if completions
    }
    assert versions_per_span(SPANS, instances, history) == by_the_rule(SPANS, instances, history)
