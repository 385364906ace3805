"""Background jobs of a server process (instance retention, the syncer): run now, then
every interval, until the server stops. A failed round is logged and the next one tries
again; a background job never stops the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from wellcar.logline import log_fields

log = logging.getLogger(__name__)


async def run_periodically(job: Callable[[], object], every: timedelta, what: str) -> None:
    """``job`` in a worker thread (it does blocking I/O), now and every ``every``."""
    while True:
        try:
            await asyncio.to_thread(job)
        except (SQLAlchemyError, OSError) as exc:
            log.error("background job failed", extra=log_fields(job=what, error=exc))
        await asyncio.sleep(every.total_seconds())
