"""The keys a log line may carry besides ``ts level logger msg exc``, and what each holds.

A call site passes its values as fields, never formatted into the message::

    log.info("unknown application", extra=log_fields(app_id=app.appid, machine_id=mid))

A key not in this table is a programming error (``KeyError`` at the call, and
tests/logline/test_call_sites.py finds every call in ``src/`` and checks its keys), so a
line's keys are always from this fixed set and a value can only ever be a value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

# Written first, by the formatters themselves.
RESERVED_KEYS = ("ts", "level", "logger", "msg", "exc")

FIELD_KEYS: dict[str, str] = {
    # the update server
    "app_id": "Omaha application id (as the node sent it, or the server's)",
    "machine_id": "the node's Omaha machineid",
    "client_ip": "the client's address (X-Forwarded-For's first hop behind a proxy)",
    "track": "Omaha track (the group the node asked for)",
    "group_id": "update group id",
    "event_type": "Omaha event type",
    "event_result": "Omaha event result",
    "from_version": "version a node runs before an update",
    "to_version": "version a node is granted",
    "method": "HTTP method",
    "path": "HTTP path, or a file on the node",
    "limit": "the limit a request exceeded",
    "operation": "FleetLock operation",
    "group": "FleetLock group, or the node's update group",
    "node_id": "FleetLock node id",
    "registrations": "instance registrations (instance, application) removed by retention",
    "instances": "instances removed by retention, with their history",
    "retention_days": "days without a check-in after which an instance is forgotten",
    "job": "a server background job (pruning, sync)",
    "channel": "a channel (the syncer: name/board)",
    "holders": "FleetLock slot holders",
    "slots": "FleetLock slots, or a node's slot states",
    # the node agent
    "version": "an OS version",
    "new_version": "the version an update installs",
    "slot": "a /usr slot (A or B)",
    "loader": "the boot loader that counts boot tries (systemd-boot or grub)",
    "boot_id": "a boot id",
    "tries_before": "boot tries left before",
    "tries_after": "boot tries left after",
    "outcome": "what a boot's assessment found",
    "state": "the agent's update state",
    "code": "update_engine error code",
    "action": "what the reboot strategy decided",
    "url": "a download URL",
    "failures": "failures so far",
    "max_failures": "failures allowed",
    "retry_at": "when the next attempt is due",
    "target": "a TUF target name",
    "length": "a length in bytes",
    "root": "the TUF root file",
    "root_version": "TUF root metadata version",
    "timestamp_version": "TUF timestamp metadata version",
    "snapshot_version": "TUF snapshot metadata version",
    "targets_version": "TUF targets metadata version",
    "expires": "when metadata expires",
    "repository": "the release repository URL",
    "cache": "a local cache directory",
    "server": "the update server URL",
    "strategy": "the reboot strategy",
    "node": "which machine the agent drives",
    "socket": "the control socket",
    "image": "a disk image file",
    "pid": "a process id",
    "peer_pid": "the process on the other end of the control socket",
    "uid": "a user id",
    "command": "a control command",
    "signal": "a signal name",
    "seconds": "how long something took",
    "warning": "a configuration or status-file warning",
    # both
    "result": "the outcome of an operation",
    "reason": "why something was refused or ignored",
    "error": "an error message",
}

FIELDS_ATTR = "wellcar_fields"  # the LogRecord attribute ``extra=log_fields(...)`` sets


def log_fields(**values: object) -> dict[str, object]:
    """``extra=`` for a logging call: the fields, after checking every key is known."""
    unknown = sorted(set(values) - FIELD_KEYS.keys())
    if unknown:
        raise KeyError(f"log field(s) {', '.join(unknown)} not in wellcar.logline.FIELD_KEYS")
    return {FIELDS_ATTR: values}


def record_fields(record: logging.LogRecord) -> Iterator[tuple[str, object]]:
    """A record's fields in the order given; keys outside the table are dropped."""
    values = getattr(record, FIELDS_ATTR, None)
    if not isinstance(values, dict):
        return
    for key, value in values.items():
        if key in FIELD_KEYS:
            yield key, value
