"""Chart data for the group page, shaped as Chart.js line-chart data (labels and datasets).

The page embeds it as JSON; static/console.js hands it to the vendored Chart.js."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wellcar.server.api.console.templates import STATUS_NAMES
from wellcar.server.data.stats import StatusTimeline, VersionTimeline
from wellcar.server.semver import sort_key

# Distinct colours that keep 3:1 contrast on white, for lines next to each other.
PALETTE = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#475569")


def _label(at: datetime, fine: bool) -> str:
    return at.strftime("%m-%d %H:%M" if fine else "%Y-%m-%d")


def version_chart(timeline: VersionTimeline, fine: bool) -> dict[str, Any]:
    """Instances per version over time, newest version first in the legend."""
    times = sorted(timeline)
    versions = sorted(
        {v for counts in timeline.values() for v in counts}, key=sort_key, reverse=True
    )
    return {
        "labels": [_label(at, fine) for at in times],
        "datasets": [
            {
                "label": version,
                "data": [timeline[at].get(version, 0) for at in times],
                "borderColor": PALETTE[i % len(PALETTE)],
                "backgroundColor": PALETTE[i % len(PALETTE)],
            }
            for i, version in enumerate(versions)
        ],
    }


def status_chart(timeline: StatusTimeline, fine: bool) -> dict[str, Any]:
    """Status changes per time step, one line per status, summed over versions."""
    times = sorted(timeline)
    statuses = sorted({int(s) for bucket in timeline.values() for s in bucket})
    return {
        "labels": [_label(at, fine) for at in times],
        "datasets": [
            {
                "label": STATUS_NAMES.get(status, str(status)),
                "data": [sum(timeline[at].get(str(status), {}).values()) for at in times],
                "borderColor": PALETTE[i % len(PALETTE)],
                "backgroundColor": PALETTE[i % len(PALETTE)],
            }
            for i, status in enumerate(statuses)
        ],
    }
