"""``locksmithctl``: locksmith's reboot-lock commands, mapped to the agent's reboot strategy.

* ``status``: the reboot semaphore. With ``REBOOT_STRATEGY=fleet-lock`` it is the update
  server's FleetLock group (``GET /api/fleetlock/groups/<LOCKSMITHD_GROUP>``; the server's
  API token from ``WELLCAR_TOKEN`` if it requires one); with ``reboot`` or ``off`` there is
  no cluster lock: this node alone, ``Available: 1`` ``Max: 1``.
* ``unlock [ID]``: release the lock held by this node (or by ID): FleetLock's
  ``steady-state``; nothing to release with a local strategy.
* ``send-need-reboot``: make the agent reboot as though an update waited for a reboot,
  when its strategy allows (locksmith's test signal).

Exit codes as locksmithctl's: 0 done, 1 failed, 2 unknown subcommand.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from wellcar.agent.cli import BRAND, CommandFailed, call
from wellcar.agent.config import AgentConfig, RebootStrategy, load_config
from wellcar.agent.errors import AgentError
from wellcar.agent.fleetlock_client import FleetLockClient, FleetLockError, app_specific_machine_id
from wellcar.agent.node_identity import MACHINE_ID_PATH

CLI_NAME = "locksmithctl"
COMMANDS = ("status", "unlock", "send-need-reboot", "help")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _config(root: Path, brand: str) -> AgentConfig:
    return load_config(root, brand)


def _fleetlock(config: AgentConfig) -> bool:
    return config.reboot_strategy is RebootStrategy.FLEET_LOCK and bool(config.fleetlock_url)


def status(config: AgentConfig) -> int:
    if not _fleetlock(config):
        print("Available: 1")
        print("Max: 1")
        return EXIT_OK
    url = f"{config.fleetlock_url}api/fleetlock/groups/{config.fleetlock_group}"
    headers = {"Accept": "application/json"}
    if token := os.environ.get("WELLCAR_TOKEN"):
        headers["Authorization"] = f"Bearer {token.strip()}"
    try:
        response = httpx.get(url, headers=headers, timeout=config.http_timeout.total_seconds())
        response.raise_for_status()
        group: dict[str, Any] = json.loads(response.content)
    except (httpx.HTTPError, ValueError) as exc:
        print(f"Error getting the reboot lock from {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print("Available:", group.get("free_slots", group.get("freeSlots")))
    print("Max:", group.get("slots"))
    holders = group.get("holders") or []
    if holders:
        print("")
        print("MACHINE ID")
        for holder in holders:
            print(holder.get("id"))
    return EXIT_OK


def unlock(config: AgentConfig, args: Sequence[str]) -> int:
    if not _fleetlock(config):
        return EXIT_OK  # a local strategy holds no cluster lock
    if args:
        node_id = args[0]
    else:
        path = config.root / MACHINE_ID_PATH.lstrip("/")
        try:
            machine_id = path.read_text(encoding="utf-8").strip()
        except OSError:
            print("Cannot read machine-id", file=sys.stderr)
            return EXIT_FAILED
        node_id = app_specific_machine_id(machine_id)
    assert config.fleetlock_url is not None
    try:
        with FleetLockClient(config.fleetlock_url, node_id, config.fleetlock_group) as client:
            client.steady_state()
    except (FleetLockError, ValueError) as exc:
        print("Error unlocking:", exc, file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def send_need_reboot(root: Path, brand: str) -> int:
    try:
        response = call(root, brand, None, "need-reboot", 10.0)
    except CommandFailed as exc:
        print("error sending need-reboot to the agent:", exc, file=sys.stderr)
        return EXIT_FAILED
    print(response["message"], file=sys.stderr)
    return EXIT_OK


def usage() -> None:
    print(f"Usage: {CLI_NAME} [-root DIR] [-brand NAME] COMMAND [ARGS]")
    print("Commands: status, unlock [MACHINE-ID], send-need-reboot")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root, brand = Path("/"), os.environ.get("WELLCAR_BRAND", BRAND)
    while args and args[0].lstrip("-") in ("root", "brand") and args[0].startswith("-"):
        if len(args) < 2:
            print(f"flag needs an argument: {args[0]}", file=sys.stderr)
            return EXIT_USAGE
        flag, value, args = args[0].lstrip("-"), args[1], args[2:]
        root, brand = (Path(value), brand) if flag == "root" else (root, value)
    if not args or args[0] == "help":
        usage()
        return EXIT_OK
    command = args[0]
    if command not in COMMANDS:
        print(f"{CLI_NAME}: unknown subcommand: {command!r}")
        print(f"Run '{CLI_NAME} help' for usage.")
        return EXIT_USAGE
    try:
        if command == "send-need-reboot":
            return send_need_reboot(root, brand)
        config = _config(root, brand)
        if command == "status":
            return status(config)
        return unlock(config, args[1:])
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
