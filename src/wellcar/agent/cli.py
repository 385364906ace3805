"""``wellcar agent``: the node's command line (argparse; what the node's python3 ships).

``run`` is the daemon (update_engine and locksmith in one). The other commands talk to it
over its control socket (``STATE_DIR/agent.sock``, see ``wellcar.agent.control``) the way
``update_engine_client`` talks to update_engine; ``status`` also works without a running
agent and without root (see ``wellcar.agent.status_view``). Mistakes print one ``error:``
line on stderr and exit with status 1, never a traceback.

This module imports only the agent (no typer, rich, pydantic or server code): the image's
``/usr/bin/wellcar`` runs it on Debian's python3 (:func:`wellcar_main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from wellcar.agent.config import load_config
from wellcar.agent.control import (
    AgentNotRunningError,
    ControlError,
    ControlTimeoutError,
    request,
    socket_path,
)
from wellcar.agent.errors import AgentError
from wellcar.agent.slot_backend import SlotBackendError
from wellcar.agent.status_store import StatusStore
from wellcar.agent.status_view import read_document, slot_table_lines, status_lines
from wellcar.disk import DiskError

__all__ = ["CommandFailed", "call", "main", "wellcar_main"]

BRAND = "wellcar"


class CommandFailed(Exception):
    """Ends a command with ``error: <message>`` and exit status 1."""


def fail(message: str) -> NoReturn:
    raise CommandFailed(message)


def _config(root: Path, brand: str) -> Any:
    try:
        return load_config(root, brand)
    except AgentError as exc:
        fail(str(exc))


def call(
    root: Path, brand: str, socket: Path | None, command: str, timeout: float, **args: Any
) -> dict[str, Any]:
    """One control command; one clear line when the agent is not there or says no."""
    config = _config(root, brand)
    path = socket or socket_path(config)
    try:
        return request(path, command, timeout=timeout, **args)
    except AgentNotRunningError as exc:
        # A blocked agent (a configuration it cannot act on) serves no socket: say why.
        blocked = StatusStore(config.status_path).load().blocked_reason
        if blocked:
            fail(f"the agent cannot act on its configuration: {blocked}")
        raise CommandFailed(str(exc)) from None
    except ControlTimeoutError as exc:
        if command in ("check", "update", "install"):
            fail(f"{exc}; it goes on in the agent (follow it with `wellcar agent status`)")
        raise CommandFailed(str(exc)) from None


def _report(response: dict[str, Any], failures: tuple[str, ...]) -> None:
    if response["result"] in failures:
        fail(response["message"])
    print(response["message"])


# ---------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> None:
    from wellcar.agent.runner import run_agent  # the daemon's parts: only for `run`

    run_agent(
        args.root, args.brand, args.disk_image, args.allow_unsigned, args.log_level,
        args.log_format,
    )  # fmt: skip


def cmd_status(args: argparse.Namespace) -> None:
    document = read_document(args.root, args.brand, disk_image=args.disk_image, socket=args.socket)
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print("\n".join(status_lines(document)))
    table = slot_table_lines(document)
    if table:
        print("\n".join(table))


def cmd_check(args: argparse.Namespace) -> None:
    response = call(
        args.root, args.brand, args.socket, "check", args.timeout + 5.0, wait=args.timeout
    )
    _report(response, ("check-failed",))


def cmd_update(args: argparse.Namespace) -> None:
    if args.payload is not None:
        if args.version is None:
            fail("--payload needs --version (the payload's version, as flatcar-update's)")
        payload = args.payload.resolve()
        if not payload.is_file():
            fail(f"--payload {args.payload}: no such file")
        response = call(
            args.root, args.brand, args.socket, "install", args.timeout,
            payload=str(payload), version=args.version,
        )  # fmt: skip
    else:
        response = call(args.root, args.brand, args.socket, "update", args.timeout)
    _report(response, ("failed", "check-failed"))


def cmd_reset(args: argparse.Namespace) -> None:
    response = call(args.root, args.brand, args.socket, "reset", 30.0)
    print(f"status reset: {response['status']['state']}")


def cmd_rollback(args: argparse.Namespace) -> None:
    response = call(args.root, args.brand, args.socket, "rollback", 30.0)
    slot = response["slot"]
    version = slot["version"] or "unknown version"
    print(f"slot {slot['slot']} ({version}) boots next: reboot to switch to it")


# ------------------------------------------------------------------------------ parser


def _common(parser: argparse.ArgumentParser, *, socket: bool = True) -> None:
    parser.add_argument(
        "--root", type=Path, default=Path("/"),
        help="read update.conf, the release file and state under here",
    )  # fmt: skip
    parser.add_argument("--brand", default=BRAND, help="the OS brand: /etc/BRAND/update.conf")
    if socket:
        parser.add_argument(
            "--socket", type=Path, help="the agent's control socket [STATE_DIR/agent.sock]"
        )


def build_parser(prog: str = "wellcar agent") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The node's update agent: run it; ask it for status, checks, updates, "
        "rollbacks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent (the daemon)")
    _common(run, socket=False)
    run.add_argument("--disk-image", type=Path, help="a simulated node on this disk image file")
    run.add_argument("--allow-unsigned", action="store_true", help="run without payload keys")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    run.add_argument("--log-format", default="logfmt", help="logfmt or json")
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="the update status and both slots (-status)")
    _common(status)
    status.add_argument("--disk-image", type=Path, help="without an agent: the simulated node")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    check = commands.add_parser("check", help="check for an update now (-check_for_update)")
    _common(check)
    check.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    check.set_defaults(handler=cmd_check)

    update = commands.add_parser(
        "update", help="check and install now, or install a payload file (-update)"
    )
    _common(update)
    update.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    update.add_argument("--payload", type=Path, help="install this payload file (offline)")
    update.add_argument("--version", help="the version of --payload")
    update.set_defaults(handler=cmd_update)

    reset = commands.add_parser("reset", help="forget an update waiting for a reboot")
    _common(reset)
    reset.set_defaults(handler=cmd_reset)

    rollback = commands.add_parser("rollback", help="boot the other slot next")
    _common(rollback)
    rollback.set_defaults(handler=cmd_rollback)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "wellcar agent") -> int:
    args = build_parser(prog).parse_args(argv)
    if getattr(args, "timeout", 0.0) < 0:
        print("error: --timeout must be >= 0", file=sys.stderr)
        return 1
    try:
        args.handler(args)
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (AgentError, ControlError, DiskError, SlotBackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or 'I/O'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def wellcar_main(argv: Sequence[str] | None = None) -> int:
    """``/usr/bin/wellcar`` on a node: ``agent`` and ``install`` here; the rest needs the
    full CLI, which the node does not ship."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["agent"]:
        return main(args[1:])
    if args[:1] == ["install"]:  # the installer runs on the node too (live ISO, PXE)
        from wellcar.install.cli import main as install_main

        return install_main(args[1:])
    try:
        from wellcar.cli.main import main as full_main
    except ImportError as exc:
        name = exc.name or "a library"
        print(
            f"error: `wellcar {' '.join(args[:1]) or '...'}` is not available here ({name} is "
            "not installed); on a node use `wellcar agent ...`",
            file=sys.stderr,
        )
        return 1
    full_main()
    return 0
