"""``update_engine_client``: Flatcar's client of update_engine, over the agent's socket.

Flags as Flatcar's (gflags: ``-flag`` or ``--flag``): ``-status`` prints exactly its five
lines on stdout (``LAST_CHECKED_TIME``, ``PROGRESS``, ``CURRENT_OP``, ``NEW_VERSION``,
``NEW_SIZE``); ``-check_for_update`` starts a check and returns; ``-update`` checks,
installs and waits (exit 0 when updated or nothing to do, 1 when it failed);
``-reset_status``; ``-watch_for_updates`` prints each status change until interrupted.
Its informational lines go to stderr, as glog's do. Exit status 1 on any failure.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from wellcar.agent.cli import BRAND, CommandFailed, call
from wellcar.agent.control import ControlError
from wellcar.agent.errors import AgentError
from wellcar.agent.status_view import read_document, update_engine_lines

FLAGS = ("check_for_update", "status", "reset_status", "update", "watch_for_updates")
WATCH_INTERVAL = 1.0  # seconds between polls of the status (update_engine signals instead)


def info(message: str) -> None:
    """A glog-style INFO line on stderr (what update_engine_client prints besides -status)."""
    now = datetime.now()
    print(f"I{now:%m%d %H:%M:%S.%f} {os.getpid():>6} update_engine_client] {message}",
          file=sys.stderr)  # fmt: skip


def error(message: str) -> int:
    now = datetime.now()
    print(f"E{now:%m%d %H:%M:%S.%f} {os.getpid():>6} update_engine_client] {message}",
          file=sys.stderr)  # fmt: skip
    return 1


def parse_flags(argv: Sequence[str]) -> tuple[set[str], Path, str]:
    """gflags' boolean syntax: -flag, --flag, -flag=true|false. ``-root``/``-brand``
    (Wellcar's, for tests and other brands) take a value."""
    flags: set[str] = set()
    root, brand = Path("/"), os.environ.get("WELLCAR_BRAND", BRAND)
    items = list(argv)
    while items:
        item = items.pop(0)
        name, _, value = item.lstrip("-").partition("=")
        if name in ("root", "brand"):
            if not value:
                if not items:
                    raise ValueError(f"flag '-{name}' is missing its argument")
                value = items.pop(0)
            root, brand = (Path(value), brand) if name == "root" else (root, value)
        elif name in FLAGS and item.startswith("-"):
            if value.lower() in ("", "true", "1", "yes"):
                flags.add(name)
            elif value.lower() not in ("false", "0", "no"):
                raise ValueError(f"illegal value '{value}' specified for bool flag '{name}'")
        else:
            raise ValueError(f"unknown command line flag '{item.lstrip('-')}'")
    return flags, root, brand


def print_status(root: Path, brand: str) -> int:
    info("Querying Update Engine status...")
    document = read_document(root, brand, slots=False)
    print("\n".join(update_engine_lines(document)))
    if not document["daemon"]["running"]:
        return error("Error getting status: the update agent is not running "
                     "(the state shown is the last one saved)")  # fmt: skip
    return 0


def watch(root: Path, brand: str) -> int:
    info("Watching for status updates.")
    last: list[str] | None = None
    while True:
        lines = update_engine_lines(read_document(root, brand, slots=False))
        if lines != last:
            info("Got status update:")
            for line in lines:
                key, _, value = line.partition("=")
                info(f"  {key.lower().replace('current_op', 'current_operation')}: {value}")
            last = lines
        time.sleep(WATCH_INTERVAL)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        flags, root, brand = parse_flags(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    try:
        # In update_engine_client's order of precedence.
        if "reset_status" in flags:
            info("Setting Update Engine status to idle ...")
            try:
                call(root, brand, None, "reset", 30.0)
            except CommandFailed as exc:
                return error(f"ResetStatus failed: {exc}")
            info("ResetStatus succeeded")
            return 0
        if "status" in flags:
            return print_status(root, brand)
        if "check_for_update" in flags or "update" in flags:
            info("Initiating update check and install.")
            if "update" not in flags:
                try:  # update_engine's AttemptUpdate returns at once: so does this
                    call(root, brand, None, "check", 10.0, wait=0)
                except CommandFailed as exc:
                    return error(f"Error checking for update: {exc}")
                return 0
            info("Waiting for update to complete.")
            try:
                response = call(root, brand, None, "update", 24 * 3600.0)
            except CommandFailed as exc:
                return error(f"Update failed: {exc}")
            result = response["result"]
            if result == "no-update":
                info("No update available")
                return 0
            if result in ("updated-need-reboot", "rebooting"):
                info("Update succeeded -- reboot needed.")
                return 0
            return error(f"Update failed. {response['message']}")
        if "watch_for_updates" in flags:
            return watch(root, brand)
    except (AgentError, ControlError, OSError) as exc:
        return error(str(exc))
    except KeyboardInterrupt:
        return 130
    info("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
