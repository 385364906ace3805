"""What a VM is made of, and the pure function that turns it into a QEMU command line.

Networking is QEMU user networking with ``restrict=on`` and nothing else: the guest can reach
only what a forward names, and every forward ends on 127.0.0.1 of the host. The checks live
here, in one place, so no caller can build a command line that gives a guest a route out.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

LOOPBACK = "127.0.0.1"
QEMU_BINARY = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# The fw_cfg key Flatcar's Ignition reads on QEMU; kept so Flatcar configs work unchanged.
IGNITION_FW_CFG_NAME = "opt/org.flatcar-linux/config"
# QEMU user networking's guest subnet; guestfwd addresses must lie inside it.
USER_NET = ipaddress.IPv4Network("10.0.2.0/24")
# Clouds serve metadata at 169.254.169.254, and QEMU forwards only addresses inside the
# guest's own network: a VM that meets a metadata emulator gets this network instead.
LINK_LOCAL_NET = ipaddress.IPv4Network("169.254.0.0/16")
GUEST_NETWORKS = (USER_NET, LINK_LOCAL_NET)


class Firmware(StrEnum):
    """What starts the machine: OVMF (UEFI, systemd-boot) or QEMU's default SeaBIOS
    (BIOS, GRUB from the BIOS-BOOT partition). The same disk image boots on both."""

    UEFI = "uefi"
    BIOS = "bios"


def reserved_addresses(network: ipaddress.IPv4Network) -> set[ipaddress.IPv4Address]:
    """QEMU's own addresses in a user network: .2 gateway, .3 DNS, .15 the guest."""
    return {network[2], network[3], network[15]}


USER_NET_RESERVED = reserved_addresses(USER_NET)


class VmError(Exception):
    """A VM cannot be configured, started or reached."""


class Accelerator(StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class DiskFormat(StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"


def _check_port(port: int, what: str) -> None:
    if not 1 <= port <= 65535:
        raise VmError(f"{what} {port} is not a TCP port (1-65535)")


def _check_host(host: str) -> None:
    # Anything but the IPv4 loopback would let the guest (or the network) reach past the host.
    if host != LOOPBACK:
        raise VmError(f"forwards may only use host address {LOOPBACK}, not {host!r}")


def _check_option_value(value: str, what: str) -> None:
    # QEMU splits option values on commas; a comma in a path would inject extra options.
    if "," in value:
        raise VmError(f"{what} must not contain a comma: {value!r}")


@dataclass(frozen=True)
class GuestForward:
    """Guest connections to guest_address:guest_port reach host_address:host_port on the host.

    Each guest connection runs ``python -m wellcar.vm.relay`` (QEMU's ``cmd:`` guestfwd),
    because QEMU's ``tcp:`` form connects once, at start-up, and fails if nothing listens yet.
    """

    guest_address: str
    guest_port: int
    host_port: int
    host_address: str = LOOPBACK

    def __post_init__(self) -> None:
        _check_host(self.host_address)
        _check_port(self.guest_port, "guest port")
        _check_port(self.host_port, "host port")
        try:
            address = ipaddress.IPv4Address(self.guest_address)
        except ValueError as exc:
            raise VmError(f"guest address {self.guest_address!r} is not an IPv4 address") from exc
        if not any(address in n and address not in reserved_addresses(n) for n in GUEST_NETWORKS):
            raise VmError(
                f"guest address {address} must be a free address in {USER_NET} or "
                f"{LINK_LOCAL_NET} (not .2 gateway, .3 DNS or .15 guest)"
            )


@dataclass(frozen=True)
class FwCfgEntry:
    """A file handed to the guest through QEMU's fw_cfg (Ignition reads its config this way)."""

    name: str
    path: Path

    def __post_init__(self) -> None:
        # QEMU reserves every name outside opt/ for itself.
        if not self.name.startswith("opt/"):
            raise VmError(f"fw_cfg name {self.name!r} must start with 'opt/'")
        _check_option_value(self.name, "fw_cfg name")
        _check_option_value(str(self.path), "fw_cfg file")


@dataclass(frozen=True)
class VmConfig:
    """Everything needed to run one disk image. Defaults give a small UEFI q35 machine;
    ``firmware=Firmware.BIOS`` the same machine with SeaBIOS."""

    image: Path
    image_format: DiskFormat = DiskFormat.RAW
    memory_mib: int = 1024
    cpus: int = 1
    ovmf_code: Path = OVMF_CODE
    ovmf_vars_template: Path = OVMF_VARS
    firmware: Firmware = Firmware.UEFI
    serial_log: Path | None = None  # None: a file in the VM's private run directory
    ssh_port: int | None = None  # host port forwarded to the guest's port 22
    guest_forwards: tuple[GuestForward, ...] = ()
    fw_cfg: tuple[FwCfgEntry, ...] = ()
    # True: writes go to a qcow2 overlay (kept across kill()/start()), the image stays untouched.
    copy_on_write: bool = True
    # The guest's disk size in bytes (None: the image's). Only with copy_on_write: the
    # overlay is made that large, as a cloud VM's disk is larger than the image written
    # to it (the OS grows its ROOT into the rest on first boot).
    disk_size: int | None = None
    accelerator: Accelerator = Accelerator.AUTO
    qemu_binary: str = QEMU_BINARY
    extra_args: tuple[str, ...] = field(default=())
    # The guest's user network: USER_NET, or LINK_LOCAL_NET to forward 169.254.169.254.
    guest_network: ipaddress.IPv4Network = USER_NET

    def __post_init__(self) -> None:
        if self.guest_network not in GUEST_NETWORKS:
            raise VmError(f"guest network {self.guest_network} is not one of {GUEST_NETWORKS}")
        for forward in self.guest_forwards:
            if ipaddress.IPv4Address(forward.guest_address) not in self.guest_network:
                raise VmError(f"guest forward {forward.guest_address} is outside the guest "
                              f"network {self.guest_network}")  # fmt: skip
        if self.memory_mib < 64:
            raise VmError(f"memory {self.memory_mib} MiB is too small (at least 64)")
        if self.cpus < 1:
            raise VmError(f"cpus must be at least 1, not {self.cpus}")
        if self.ssh_port is not None:
            _check_port(self.ssh_port, "ssh port")
        if self.disk_size is not None:
            if not self.copy_on_write:
                raise VmError("a disk size needs the copy-on-write overlay (snapshot mode)")
            if self.disk_size <= 0 or self.disk_size % (1 << 20):
                raise VmError(f"disk size {self.disk_size} is not a positive multiple of 1 MiB")
        for path, what in (
            (self.image, "image path"),
            (self.ovmf_code, "OVMF code path"),
            (self.serial_log, "serial log path"),
        ):
            if path is not None:
                _check_option_value(str(path), what)
        for arg in self.extra_args:
            # extra_args is for devices and debugging, never for a second network.
            if "netdev" in arg or arg in ("-net", "-nic"):
                raise VmError(f"extra argument {arg!r} may not add networking")


@dataclass(frozen=True)
class RunFiles:
    """Per-run files the command line refers to (made by Vm, passed in to keep building pure)."""

    disk: Path
    disk_format: DiskFormat
    ovmf_vars: Path | None  # None on BIOS machines
    serial_log: Path
    qmp_socket: Path


def netdev_argument(config: VmConfig, python: str = sys.executable) -> str:
    """The ``-netdev user,...`` value: restricted, with only loopback forwards."""
    parts = ["user", "id=net0", "restrict=on"]
    if config.guest_network != USER_NET:
        parts.append(f"net={config.guest_network}")
    if config.ssh_port is not None:
        parts.append(f"hostfwd=tcp:{LOOPBACK}:{config.ssh_port}-:22")
    _check_option_value(python, "python path")
    for forward in config.guest_forwards:
        _check_host(forward.host_address)
        parts.append(
            f"guestfwd=tcp:{forward.guest_address}:{forward.guest_port}"
            f"-cmd:{python} -m wellcar.vm.relay {forward.host_address} {forward.host_port}"
        )
    return ",".join(parts)


def build_qemu_command(
    config: VmConfig,
    files: RunFiles,
    accelerator: Accelerator,
    python: str = sys.executable,
) -> list[str]:
    """The full QEMU argv for config; accelerator must already be resolved (kvm or tcg)."""
    if accelerator is Accelerator.AUTO:
        raise VmError("resolve the accelerator (kvm or tcg) before building the command")
    for path, what in (
        (files.disk, "disk path"),
        (files.ovmf_vars, "OVMF vars path"),
        (files.serial_log, "serial log path"),
        (files.qmp_socket, "QMP socket path"),
    ):
        if path is not None:
            _check_option_value(str(path), what)
    if config.firmware is Firmware.UEFI and files.ovmf_vars is None:
        raise VmError("a UEFI machine needs its copy of the OVMF variables")
    # No -bios on BIOS machines: QEMU's default firmware is SeaBIOS.
    firmware = (
        [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={config.ovmf_code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={files.ovmf_vars}",
        ]
        if config.firmware is Firmware.UEFI
        else []
    )
    command = [
        config.qemu_binary,
        "-machine",
        "q35",
        "-accel",
        accelerator.value,
        # TCG emulates the richest CPU it can; KVM passes the host's through.
        "-cpu",
        "host" if accelerator is Accelerator.KVM else "max",
        "-m",
        str(config.memory_mib),
        "-smp",
        str(config.cpus),
        # No default NIC, VGA or serial: every device below is one we chose.
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        *firmware,
        "-drive",
        f"if=virtio,format={files.disk_format.value},file={files.disk}",
        # append=on so a restart after kill() keeps the earlier boot's log (and read offsets).
        "-chardev",
        f"file,id=serial0,path={files.serial_log},append=on",
        "-serial",
        "chardev:serial0",
        "-qmp",
        f"unix:{files.qmp_socket},server=on,wait=off",
        "-netdev",
        netdev_argument(config, python),
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    for entry in config.fw_cfg:
        command += ["-fw_cfg", f"name={entry.name},file={entry.path}"]
    command += list(config.extra_args)
    return command
