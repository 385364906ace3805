"""`wellcar vm`: run a disk image in QEMU (UEFI, serial console, ssh on a loopback port).

The guest gets QEMU user networking with restrict=on: it can reach nothing but the forwards
given here, all on 127.0.0.1. Mistakes print one ``error:`` line and exit with status 1.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from wellcar.cli.output import fail, out
from wellcar.vm import (
    IGNITION_FW_CFG_NAME,
    Accelerator,
    DiskFormat,
    Firmware,
    FwCfgEntry,
    Vm,
    VmConfig,
    VmError,
    probe_kvm,
)
from wellcar.vm.host_services import (
    HostService,
    host_service,
    ignition_with_update_conf,
    update_server_service,
)

vm_app = typer.Typer(
    help="Run disk images in QEMU (UEFI/OVMF, serial console, ssh over 127.0.0.1).",
    no_args_is_help=True,
)

CONSOLE_POLL_SECONDS = 0.1
STOP_TIMEOUT_SECONDS = 30.0


def _copy_console(vm: Vm, offset: int) -> int:
    """Write serial output after offset to stdout; the new offset."""
    with vm.serial_log.open("rb") as log:
        log.seek(offset)
        data = log.read()
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return offset + len(data)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@vm_app.command()
def run(
    image: Annotated[Path, typer.Argument(help="Disk image file", show_default=False)],
    config: Annotated[
        Path | None,
        typer.Option("--config", help=f"Ignition config, passed as fw_cfg {IGNITION_FW_CFG_NAME}"),
    ] = None,
    ssh_port: Annotated[
        int | None, typer.Option("--ssh-port", help="Forward 127.0.0.1:PORT to the guest's ssh")
    ] = None,
    memory: Annotated[int, typer.Option("--memory", help="Memory in MiB")] = 1024,
    cpus: Annotated[int, typer.Option("--cpus", help="Virtual CPUs")] = 1,
    serial_log: Annotated[
        Path | None, typer.Option("--serial-log", help="Also keep the serial console here")
    ] = None,
    snapshot: Annotated[
        bool,
        typer.Option(
            "--snapshot/--no-snapshot",
            help="Write to a throw-away overlay (default) or into the image itself",
        ),
    ] = True,
    image_format: Annotated[
        DiskFormat, typer.Option("--format", help="Format of IMAGE")
    ] = DiskFormat.RAW,
    accel: Annotated[
        Accelerator, typer.Option("--accel", help="auto probes KVM and falls back to TCG")
    ] = Accelerator.AUTO,
    firmware: Annotated[
        Firmware,
        typer.Option("--firmware", help="uefi (OVMF, systemd-boot) or bios (SeaBIOS, GRUB)"),
    ] = Firmware.UEFI,
    update_server: Annotated[
        str | None,
        typer.Option(
            "--update-server",
            help="http://127.0.0.1:PORT[/v1/update/]: the node's SERVER, reached through a "
            "guest forward (written into the Ignition config's update.conf)",
        ),
    ] = None,
    release_repository: Annotated[
        str | None,
        typer.Option(
            "--release-repository",
            help="http://127.0.0.1:PORT/: the release tree the node verifies updates against "
            "(RELEASE_REPOSITORY), reached the same way",
        ),
    ] = None,
) -> None:
    """Boot IMAGE and show its serial console until the VM powers off or Ctrl-C."""
    if not image.is_file():
        fail(f"disk image {image} does not exist")
    if config is not None and not config.is_file():
        fail(f"config file {config} does not exist")
    scratch = tempfile.TemporaryDirectory(prefix="wellcar-vm-config-")
    try:
        services: list[tuple[str, HostService]] = []
        if update_server is not None:
            services.append(("SERVER", update_server_service(update_server)))
        if release_repository is not None:
            services.append(("RELEASE_REPOSITORY", host_service(release_repository)))
        if services:
            # The node learns the guest-side URLs from update.conf in its Ignition config.
            values = {key: service.guest_url for key, service in services}
            generated = Path(scratch.name) / "config.ign"
            generated.write_bytes(ignition_with_update_conf(config, values))
            config = generated
        vm_config = VmConfig(
            image=image,
            image_format=image_format,
            memory_mib=memory,
            cpus=cpus,
            serial_log=serial_log.resolve() if serial_log else None,
            ssh_port=ssh_port,
            guest_forwards=tuple(service.forward for _, service in services),
            fw_cfg=(FwCfgEntry(IGNITION_FW_CFG_NAME, config.resolve()),) if config else (),
            copy_on_write=snapshot,
            accelerator=accel,
            firmware=firmware,
        )
        vm = Vm(vm_config)
        vm.start()
    except VmError as exc:
        scratch.cleanup()
        fail(str(exc))
    out.print(f"VM started (pid {vm.pid}, {vm.accelerator}); serial log {vm.serial_log}")
    if ssh_port is not None:
        out.print(f"ssh: ssh -p {ssh_port} core@127.0.0.1")
    for key, service in services:
        out.print(f"{key}: {service.host_url} is {service.guest_url} in the guest")
    out.print("Ctrl-C powers the VM down.")
    # QEMU runs in its own session (a Ctrl-C must reach us, not it): a SIGTERM or SIGHUP
    # must power it down like Ctrl-C does, or it would outlive this command.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    offset = 0
    try:
        while vm.is_running():
            offset = _copy_console(vm, offset)
            time.sleep(CONSOLE_POLL_SECONDS)
        _copy_console(vm, offset)
    except KeyboardInterrupt:
        out.print("\nPowering down (ACPI); QEMU is killed if the guest ignores it.")
        vm.stop(timeout=STOP_TIMEOUT_SECONDS)
    finally:
        vm.close()
        scratch.cleanup()


@vm_app.command("probe-kvm")
def probe_kvm_command(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for OVMF")] = 5.0,
) -> None:
    """Check whether a KVM guest really runs here (else VMs use TCG emulation)."""
    verdict = probe_kvm(timeout=timeout)
    state = "usable" if verdict.usable else "not usable, VMs use TCG"
    out.print(f"kvm: {state} ({verdict.reason}; {verdict.seconds:g} s)")
