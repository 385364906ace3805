"""Entry point of the `wellcar` command."""

from __future__ import annotations

import sys

import typer

from wellcar import __version__
from wellcar.cli.agent_commands import agent_app
from wellcar.cli.api_commands import api_app
from wellcar.cli.demo import demo
from wellcar.cli.disk_commands import disk_app
from wellcar.cli.payload_commands import keys_app, payload_app
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


@app.command()
def version() -> None:
    """Print Wellcar's version."""
    typer.echo(__version__)


app.add_typer(api_app, name="api", help="Script the update server's REST API")
app.add_typer(payload_app, name="payload")
app.add_typer(disk_app, name="disk", help="Disk images: GPT layout, gptprio bits, A/B slots")
app.add_typer(keys_app, name="keys")
app.add_typer(
    vm_app, name="vm", help="Run disk images in QEMU (UEFI, serial console, ssh on 127.0.0.1)"
)
app.add_typer(agent_app, name="agent")


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
