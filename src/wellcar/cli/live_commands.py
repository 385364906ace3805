"""`wellcar iso customize` and `wellcar pxe customize`: embed a live config and an
unattended install into the live media (docs/live.md). Mistakes print one ``error:``
line and exit with status 1; nothing is written then."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wellcar.cli.output import fail, out
from wellcar.live.customize import customize_iso, customize_pxe, load_customization
from wellcar.live.errors import LiveError

iso_app = typer.Typer(help="The live ISO: embed configs and an unattended install.",
                      no_args_is_help=True)  # fmt: skip
pxe_app = typer.Typer(help="The PXE files: embed configs and an unattended install.",
                      no_args_is_help=True)  # fmt: skip

IgnitionOption = Annotated[
    Path, typer.Option("--ignition", "-i", help="Ignition config of the live system")
]
DestDeviceOption = Annotated[
    str | None,
    typer.Option("--dest-device", help="install to this disk unattended, then reboot into it"),
]
DestIgnitionOption = Annotated[
    Path | None, typer.Option("--dest-ignition", help="Ignition config of the installed system")
]


@iso_app.command("customize")
def iso_customize(
    iso: Annotated[Path, typer.Argument(help="a live ISO (live.iso)")],
    ignition: IgnitionOption,
    dest_device: DestDeviceOption = None,
    dest_ignition: DestIgnitionOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write a new ISO (default: in place)")
    ] = None,
) -> None:
    """Embed a live config (and an unattended, offline install) into a live ISO."""
    try:
        custom = load_customization(ignition, dest_device, dest_ignition)
        written = customize_iso(iso, custom, output)
    except (LiveError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    install = f", installs to {dest_device}" if dest_device else ""
    out.print(f"customized {written}{install}")


@pxe_app.command("customize")
def pxe_customize(
    initrd: Annotated[Path, typer.Argument(help="the live initrd (live-initrd.img)")],
    ignition: IgnitionOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="the initrd to serve")],
    dest_device: DestDeviceOption = None,
    dest_ignition: DestIgnitionOption = None,
    install_archive: Annotated[
        Path | None,
        typer.Option(help="the install image archive [default: live-install.cpio beside INITRD]"),
    ] = None,
) -> None:
    """Write one initrd: the live initrd with a live config (and an unattended, offline
    install) embedded. Serve it with live.vmlinuz and live-usr.cpio.zst."""
    try:
        custom = load_customization(ignition, dest_device, dest_ignition)
        written = customize_pxe(initrd, custom, output, install_archive)
    except (LiveError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    out.print(f"wrote {written}")
