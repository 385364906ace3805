"""Log records straight into the systemd journal, with their fields.

Under systemd (``JOURNAL_STREAM`` names our stderr) each record goes to the journal through
Debian's python3-systemd, so ``journalctl -u wellcar-agent -p err`` filters by the record's
real priority, ``SYSLOG_IDENTIFIER`` names the program, and every field is a journal field
(``WELLCAR_MACHINE_ID=…``). The journal's protocol carries values length-prefixed, so a
newline in a value cannot start a new entry there; MESSAGE is still the escaped line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from wellcar.logline.encode import MAX_VALUE_CHARS, clip
from wellcar.logline.fields import record_fields

JournalSend = Callable[..., None]

FIELD_PREFIX = "WELLCAR_"
# syslog(3) priorities, which journalctl -p filters on.
PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def priority(levelno: int) -> int:
    for level in sorted(PRIORITIES, reverse=True):
        if levelno >= level:
            return PRIORITIES[level]
    return PRIORITIES[logging.DEBUG]


def stderr_is_journal() -> bool:
    """True when systemd connected our stderr to the journal (systemd.exec(5))."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def journal_sender() -> JournalSend | None:
    """python3-systemd's ``journal.send``, or None where it is not installed."""
    try:
        from systemd import journal  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    send: JournalSend = journal.send
    return send


class JournalHandler(logging.Handler):
    def __init__(self, identifier: str, send: JournalSend) -> None:
        super().__init__()
        self.identifier = identifier
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            extra = {
                FIELD_PREFIX + key.upper(): clip(str(value), MAX_VALUE_CHARS)
                for key, value in record_fields(record)
            }
            self._send(
                message,
                PRIORITY=str(priority(record.levelno)),
                SYSLOG_IDENTIFIER=self.identifier,
                LOGGER=record.name,
                **extra,
            )
        except Exception:
            self.handleError(record)
