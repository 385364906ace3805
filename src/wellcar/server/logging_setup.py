"""The server's logging: Wellcar's log lines (wellcar.logline), uvicorn routed through them."""

from __future__ import annotations

import logging

from wellcar.logline import configure_logging


def configure_server_logging(level: str = "info", fmt: str = "logfmt") -> None:
    configure_logging(level, fmt)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are counted in /metrics; an access line per check-in would drown the log.
    logging.getLogger("uvicorn.access").disabled = True
