"""Prometheus metrics.

Fleet gauges are computed from the database at scrape time, so every server process
behind a load balancer reports the same fleet. Request latency is per process.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from wellcar.logline import log_fields
from wellcar.server.clock import Clock
from wellcar.server.db import schema as t
from wellcar.server.db.engine import READ_ONLY
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.server.fleetlock import group_states
from wellcar.server.policy import ACTIVITY_WINDOW
from wellcar.server.settings import DEFAULT_FLEETLOCK_SLOTS

log = logging.getLogger("wellcar.server.metrics")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class FleetCollector(Collector):
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self):  # type: ignore[no-untyped-def]
        ia, ch, app = t.instance_application, t.channel, t.application
        since = self.clock() - ACTIVITY_WINDOW
        per_channel = GaugeMetricFamily(
            "wellcar_application_instances_per_channel",
            "Instances seen in the last 24 h, by application, channel and version",
            labels=["application", "channel", "version"],
        )
        failed = GaugeMetricFamily(
            "wellcar_failed_updates",
            "Instances whose last update failed (status Error), seen in the last 24 h",
            labels=["application"],
        )
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            rows = conn.execute(
                select(app.c.name, func.coalesce(ch.c.name, ""), ia.c.version, func.count())
                .select_from(
                    ia.join(app, ia.c.application_id == app.c.id)
                    .outerjoin(t.groups, ia.c.group_id == t.groups.c.id)
                    .outerjoin(ch, t.groups.c.channel_id == ch.c.id)
                )
                .where(ia.c.last_check_for_updates > since)
                .group_by(app.c.name, ch.c.name, ia.c.version)
            )
            for name, channel, version, count in rows:
                per_channel.add_metric([name, channel, version], count)
            rows = conn.execute(
                select(app.c.name, func.count())
                .select_from(ia.join(app, ia.c.application_id == app.c.id))
                .where(
                    ia.c.last_check_for_updates > since, ia.c.status == int(InstanceStatus.ERROR)
                )
                .group_by(app.c.name)
            )
            for name, count in rows:
                failed.add_metric([name], count)
        yield per_channel
        yield failed


class FleetLockCollector(Collector):
    """Reboot slots and their holders per FleetLock group, read from the database."""

    def __init__(self, engine: Engine, default_slots: int) -> None:
        self.engine = engine
        self.default_slots = default_slots

    def collect(self):  # type: ignore[no-untyped-def]
        holders = GaugeMetricFamily(
            "wellcar_fleetlock_holders",
            "Nodes holding a FleetLock reboot slot, by group",
            labels=["group"],
        )
        slots = GaugeMetricFamily(
            "wellcar_fleetlock_slots",
            "Reboot slots of each FleetLock group (configured, else the default)",
            labels=["group"],
        )
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                groups = group_states(conn, self.default_slots)
        except DBAPIError as exc:
            # Leave the gauges out; the rest of the scrape (request counters) still counts.
            log.warning(
                "fleetlock gauges skipped: database error", extra=log_fields(error=exc.orig)
            )
            return
        for group in groups:
            holders.add_metric([group.name], len(group.holders))
            slots.add_metric([group.name], group.slots)
        yield holders
        yield slots


class ServerMetrics:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        fleetlock_default_slots: int = DEFAULT_FLEETLOCK_SLOTS,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FleetCollector(engine, clock))
        self.registry.register(FleetLockCollector(engine, fleetlock_default_slots))
        self._latency = Histogram(
            "wellcar_omaha_request_duration_seconds",
            "Time to answer one Omaha request (this process)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rejected = Counter(
            "wellcar_omaha_rejected_requests",
            "Omaha requests refused before processing, by reason (this process)",
            ["reason"],
            registry=self.registry,
        )
        # Labelled by operation and result only: group names come from unauthenticated clients.
        self._fleetlock_requests = Counter(
            "wellcar_fleetlock_requests",
            "FleetLock requests by operation (pre-reboot, steady-state) and result (this process)",
            ["operation", "result"],
            registry=self.registry,
        )

    def observe_omaha(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def omaha_rejected(self, reason: str) -> None:
        self._rejected.labels(reason=reason).inc()

    def fleetlock_request(self, operation: str, result: str) -> None:
        self._fleetlock_requests.labels(operation=operation, result=result).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
