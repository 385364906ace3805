"""Instance retention: forgetting instances that stopped checking in (opt-in).

Nebraska never deletes an instance row (nebraska#148, #1585), so a fleet that replaces
its machines grows its tables forever. ``wellcar serve --prune-instances-after DAYS``
removes, in short batches, each application registration of an instance not seen for
that long, then every instance left with no registration; its status history and events
go with it (``ON DELETE CASCADE``). An instance still checking in for one application
keeps that registration. Timelines over the pruned period lose those instances: that is
what forgetting them means (docs/server.md, "Instance retention").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.engine import Engine

from wellcar.logline import log_fields
from wellcar.server.clock import Clock
from wellcar.server.db import schema as t

log = logging.getLogger(__name__)

# Rows per transaction: short write transactions, so check-ins (SQLite: one writer at a
# time) wait milliseconds, not the whole prune.
BATCH = 2000
PRUNE_EVERY = timedelta(hours=1)

ia = t.instance_application


@dataclass(frozen=True)
class PruneResult:
    registrations: int  # (instance, application) rows removed
    instances: int  # instance rows removed, with their history and events

    def __bool__(self) -> bool:
        return bool(self.registrations or self.instances)


def prune_instances(
    engine: Engine, now: datetime, not_seen_for: timedelta, batch: int = BATCH
) -> PruneResult:
    """Remove what has not checked in since ``now - not_seen_for``."""
    if not_seen_for <= timedelta(0):
        raise ValueError("the retention period must be positive")
    cutoff = now - not_seen_for
    registrations = 0
    while True:
        with engine.begin() as conn:
            stale = conn.execute(
                select(ia.c.instance_id, ia.c.application_id)
                .where(ia.c.last_check_for_updates < cutoff)
                .limit(batch)
            ).all()
            for instance_id, application_id in stale:
                gone = conn.execute(
                    delete(ia).where(
                        ia.c.instance_id == instance_id,
                        ia.c.application_id == application_id,
                        ia.c.last_check_for_updates < cutoff,  # unless it checked in meanwhile
                    )
                ).rowcount
                if not gone:
                    continue
                # That application's history of the instance goes with the registration.
                for table in (t.instance_status_history, t.event):
                    conn.execute(
                        delete(table).where(
                            table.c.instance_id == instance_id,
                            table.c.application_id == application_id,
                        )
                    )
        registrations += len(stale)
        if len(stale) < batch:
            break
    instances = 0
    registered = exists().where(ia.c.instance_id == t.instance.c.id)
    while True:
        with engine.begin() as conn:
            orphans = (
                conn.execute(
                    select(t.instance.c.id)
                    .where(~registered, t.instance.c.created_ts < cutoff)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if orphans:
                conn.execute(
                    delete(t.instance).where(and_(t.instance.c.id.in_(orphans), ~registered))
                )
        instances += len(orphans)
        if len(orphans) < batch:
            break
    return PruneResult(registrations, instances)


def prune_and_log(engine: Engine, clock: Clock, retention: timedelta) -> PruneResult:
    """One retention round (server/periodic.py runs it at start and hourly)."""
    result = prune_instances(engine, clock(), retention)
    if result:
        log.info(
            "instances pruned",
            extra=log_fields(
                registrations=result.registrations,
                instances=result.instances,
                retention_days=retention.days,
            ),
        )
    return result
