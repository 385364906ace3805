"""Entry point of the `wellcar` command.

The command groups are imported only when the whole command tree is needed: the node
agent (`wellcar agent run`, a daemon on every node) must not carry the update server's
web and database stack in its memory.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

import typer

from wellcar import __version__


def version() -> None:
    """Print Wellcar's version."""
    typer.echo(__version__)


def agent(ctx: typer.Context) -> None:
    """`wellcar agent ...` is the node's own command line (argparse, no typer: it runs on
    the node's python3), reached through the full CLI too."""
    from wellcar.agent.cli import main as agent_main

    raise typer.Exit(agent_main(ctx.args))


def install(ctx: typer.Context) -> None:
    """`wellcar install ...` is argparse too (it runs on the node's python3, from the live
    ISO): flatcar-install's flags, see docs/install.md."""
    from wellcar.install.cli import main as install_main

    raise typer.Exit(install_main(ctx.args))


@cache
def build_app() -> typer.Typer:
    from wellcar.cli.api_commands import api_app
    from wellcar.cli.build_command import build_command
    from wellcar.cli.config_commands import config_app
    from wellcar.cli.demo import demo
    from wellcar.cli.disk_commands import disk_app
    from wellcar.cli.live_commands import iso_app, pxe_app
    from wellcar.cli.packages_commands import packages_app
    from wellcar.cli.payload_commands import keys_app, payload_app
    from wellcar.cli.release_commands import release_app, trust_app
    from wellcar.cli.serve import serve
    from wellcar.cli.vm_commands import vm_app

    app = typer.Typer(
        name="wellcar",
        help="Wellcar Linux: build, sign and deliver an immutable, auto-updating OS.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.command()(serve)
    app.command()(demo)
    app.command()(version)
    app.command("build")(build_command)
    app.add_typer(api_app, name="api", help="Script the update server's REST API")
    app.add_typer(payload_app, name="payload")
    app.add_typer(disk_app, name="disk", help="Disk images: GPT layout, gptprio bits, A/B slots")
    app.add_typer(keys_app, name="keys")
    app.add_typer(
        vm_app, name="vm", help="Run disk images in QEMU (UEFI, serial console, ssh on 127.0.0.1)"
    )
    app.command(
        "agent",
        help="The node's update agent: run, status, check, update, reset, rollback "
        "(`wellcar agent --help`).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(agent)
    app.command(
        "install",
        help="Install the OS onto a disk, verified (flatcar-install's flags: -d DEVICE, -C, "
        "-V, -B, -i, -b, -f, -o, -s; `wellcar install --help`).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(install)
    app.add_typer(release_app, name="release")
    app.add_typer(trust_app, name="trust")
    app.add_typer(config_app, name="config", help="Ignition configs and Butane YAML")
    app.add_typer(packages_app, name="packages")
    app.add_typer(iso_app, name="iso", help="The live ISO: embed a config, an unattended install")
    app.add_typer(pxe_app, name="pxe", help="PXE files: embed a config, an unattended install")
    return app


def __getattr__(name: str) -> Any:
    # `from wellcar.cli.main import app` keeps working, built on first use.
    if name == "app":
        return build_app()
    raise AttributeError(name)


def main() -> None:
    if sys.argv[1:2] == ["agent"]:
        from wellcar.agent.cli import main as agent_main

        sys.exit(agent_main(sys.argv[2:]))
    if sys.argv[1:2] == ["install"]:
        from wellcar.install.cli import main as install_main

        sys.exit(install_main(sys.argv[2:]))
    sys.exit(build_app()())


if __name__ == "__main__":
    main()
