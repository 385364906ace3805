"""Real QEMU (TCG) boots of a tiny ESP-only disk: firmware, serial log, kill, stop, probe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wellcar.vm import (
    Accelerator,
    GuestForward,
    Vm,
    VmConfig,
    VmError,
    free_loopback_port,
    probe_kvm,
)

# OVMF prints this only after it loaded EFI/BOOT/BOOTX64.EFI from our (virtio) disk.
FIRMWARE_STARTED_OUR_DISK = r'BdsDxe: starting Boot\d+ "UEFI Misc Device" from PciRoot'
# systemd-boot drew its menu: our bootloader ran (its entry is hidden, the kernel is missing).
SYSTEMD_BOOT_MENU = r"Reboot Into Firmware Interface"

pytestmark = pytest.mark.slow


def tcg_config(disk: Path, serial_log: Path) -> VmConfig:
    return VmConfig(
        image=disk,
        memory_mib=256,
        serial_log=serial_log,
        ssh_port=free_loopback_port(),
        guest_forwards=(GuestForward("10.0.2.100", 8000, free_loopback_port()),),
        accelerator=Accelerator.TCG,
    )


def test_kvm_probe_gives_a_verdict_in_bounded_time() -> None:
    started = time.monotonic()
    verdict = probe_kvm(timeout=5.0)
    assert time.monotonic() - started < 10.0
    assert verdict.reason


def test_boot_reaches_our_bootloader_then_kill_and_stop_end_qemu(
    boot_disk: Path, tmp_path: Path
) -> None:
    base_before = boot_disk.read_bytes()
    serial_log = tmp_path / "serial.log"
    vm = Vm(tcg_config(boot_disk, serial_log))
    with vm:
        line = vm.wait_for_line(FIRMWARE_STARTED_OUR_DISK, timeout=60)
        assert line.startswith("BdsDxe: starting Boot")
        assert SYSTEMD_BOOT_MENU in vm.wait_for_line(SYSTEMD_BOOT_MENU, timeout=30)
        pid = vm.pid

        vm.kill()  # power loss
        assert not vm.is_running()
        assert vm.wait() is not None

        vm.start()  # same overlay and VARS copy: a second boot of the same machine
        assert vm.pid != pid
        vm.wait_for_line(FIRMWARE_STARTED_OUR_DISK, timeout=60)
        # Firmware ignores the ACPI power button, so stop() must fall back to killing.
        assert vm.stop(timeout=1.0) is not None
        assert not vm.is_running()
        with pytest.raises(VmError, match="exited"):
            vm.wait_for_line("never printed", timeout=1)

    log = serial_log.read_text(errors="replace")
    assert log.count("BdsDxe: starting Boot") >= 2  # both boots, appended
    assert boot_disk.read_bytes() == base_before  # copy-on-write left the image alone


def test_wait_for_line_times_out_with_the_last_lines(boot_disk: Path, tmp_path: Path) -> None:
    with Vm(tcg_config(boot_disk, tmp_path / "serial.log")) as vm:
        with pytest.raises(VmError, match=r"not on the serial console within 0\.5 s"):
            vm.wait_for_line("never printed", timeout=0.5)
        assert vm.is_running()
        vm.kill()  # firmware ignores ACPI power-off; spare close() its wait
    assert not vm.is_running()


def test_missing_image_and_ssh_without_port_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(VmError, match="does not exist"):
        Vm(VmConfig(image=tmp_path / "missing.img")).start()
    with pytest.raises(VmError, match="no ssh port"):
        Vm(VmConfig(image=tmp_path / "missing.img")).ssh("true")
