"""Run a disk image in QEMU: UEFI (OVMF) or BIOS (SeaBIOS), serial log, ssh, fw_cfg config."""

from wellcar.vm.config import (
    IGNITION_FW_CFG_NAME,
    LOOPBACK,
    Accelerator,
    DiskFormat,
    Firmware,
    FwCfgEntry,
    GuestForward,
    RunFiles,
    VmConfig,
    VmError,
    build_qemu_command,
    netdev_argument,
)
from wellcar.vm.kvm import KvmVerdict, kvm_verdict, probe_kvm, resolve_accelerator
from wellcar.vm.machine import (
    Vm,
    VmExitedError,
    VmTimeoutError,
    clean_console_text,
    free_loopback_port,
)

__all__ = [
    "IGNITION_FW_CFG_NAME",
    "LOOPBACK",
    "Accelerator",
    "DiskFormat",
    "Firmware",
    "FwCfgEntry",
    "GuestForward",
    "KvmVerdict",
    "RunFiles",
    "Vm",
    "VmConfig",
    "VmError",
    "VmExitedError",
    "VmTimeoutError",
    "build_qemu_command",
    "clean_console_text",
    "free_loopback_port",
    "kvm_verdict",
    "netdev_argument",
    "probe_kvm",
    "resolve_accelerator",
]
