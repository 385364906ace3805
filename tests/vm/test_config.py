"""The QEMU command line is built by a pure function: check what it allows and refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.vm import (
    IGNITION_FW_CFG_NAME,
    Accelerator,
    DiskFormat,
    Firmware,
    FwCfgEntry,
    GuestForward,
    RunFiles,
    Vm,
    VmConfig,
    VmError,
    build_qemu_command,
)

FILES = RunFiles(
    disk=Path("/run/vm/overlay.qcow2"),
    disk_format=DiskFormat.QCOW2,
    ovmf_vars=Path("/run/vm/OVMF_VARS.fd"),
    serial_log=Path("/run/vm/serial.log"),
    qmp_socket=Path("/run/vm/qmp.sock"),
)


def command(config: VmConfig, accel: Accelerator = Accelerator.TCG) -> list[str]:
    return build_qemu_command(config, FILES, accel, python="/venv/bin/python")


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_minimal_config_is_restricted_user_networking_only() -> None:
    argv = command(VmConfig(image=Path("disk.img")))
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-netdev") == ["user,id=net0,restrict=on"]
    assert "-nodefaults" in argv
    assert not {"-net", "-nic"} & set(argv)


def test_a_bios_machine_boots_seabios_without_ovmf() -> None:
    """QEMU's default firmware is SeaBIOS: no pflash drives, no -bios; UEFI is the default."""
    bios = command(VmConfig(image=Path("disk.img"), firmware=Firmware.BIOS))
    assert not any("pflash" in drive for drive in option(bios, "-drive"))
    assert "-bios" not in bios
    assert option(bios, "-drive") == ["if=virtio,format=qcow2,file=/run/vm/overlay.qcow2"]
    uefi = command(VmConfig(image=Path("disk.img")))
    assert sum("pflash" in drive for drive in option(uefi, "-drive")) == 2
    without_vars = RunFiles(FILES.disk, FILES.disk_format, None, FILES.serial_log, FILES.qmp_socket)
    with pytest.raises(VmError, match="OVMF variables"):
        build_qemu_command(VmConfig(image=Path("disk.img")), without_vars, Accelerator.TCG)
    bios_argv = build_qemu_command(
        VmConfig(image=Path("disk.img"), firmware=Firmware.BIOS), without_vars, Accelerator.TCG
    )
    assert "-drive" in bios_argv


def test_every_option_reaches_the_command_line() -> None:
    config = VmConfig(
        image=Path("disk.img"),
        memory_mib=512,
        cpus=2,
        ssh_port=2222,
        guest_forwards=(GuestForward("10.0.2.100", 8000, 18000),),
        fw_cfg=(FwCfgEntry(IGNITION_FW_CFG_NAME, Path("/cfg/ignition.json")),),
    )
    argv = command(config)
    assert option(argv, "-m") == ["512"]
    assert option(argv, "-smp") == ["2"]
    assert option(argv, "-accel") == ["tcg"]
    assert option(argv, "-cpu") == ["max"]
    [netdev] = option(argv, "-netdev")
    assert netdev == (
        "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,"
        "guestfwd=tcp:10.0.2.100:8000-cmd:/venv/bin/python -m wellcar.vm.relay 127.0.0.1 18000"
    )
    assert option(argv, "-fw_cfg") == ["name=opt/org.flatcar-linux/config,file=/cfg/ignition.json"]
    drives = option(argv, "-drive")
    assert "if=pflash,format=raw,unit=1,file=/run/vm/OVMF_VARS.fd" in drives
    assert "if=virtio,format=qcow2,file=/run/vm/overlay.qcow2" in drives
    assert option(argv, "-qmp") == ["unix:/run/vm/qmp.sock,server=on,wait=off"]
    assert option(argv, "-chardev") == ["file,id=serial0,path=/run/vm/serial.log,append=on"]


def test_kvm_uses_the_host_cpu_and_auto_must_be_resolved_first() -> None:
    config = VmConfig(image=Path("disk.img"))
    argv = command(config, Accelerator.KVM)
    assert option(argv, "-accel") == ["kvm"]
    assert option(argv, "-cpu") == ["host"]
    with pytest.raises(VmError, match="resolve"):
        command(config, Accelerator.AUTO)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "localhost", "::1", "127.0.0.2"])
def test_forwards_to_any_host_address_but_loopback_are_refused(host: str) -> None:
    with pytest.raises(VmError, match=r"only use host address 127\.0\.0\.1"):
        GuestForward("10.0.2.100", 80, 8080, host_address=host)


@pytest.mark.parametrize(
    ("guest", "message"),
    [
        ("8.8.8.8", "must be a free address"),
        ("10.0.2.2", "must be a free address"),
        ("10.0.2.15", "must be a free address"),
        ("example.com", "not an IPv4 address"),
    ],
)
def test_guest_forward_addresses_stay_inside_the_user_network(guest: str, message: str) -> None:
    with pytest.raises(VmError, match=message):
        GuestForward(guest, 80, 8080)


def test_a_forward_altered_after_validation_is_still_refused_by_the_builder() -> None:
    forward = GuestForward("10.0.2.100", 80, 8080)
    object.__setattr__(forward, "host_address", "10.1.1.1")  # bypassing the frozen dataclass
    with pytest.raises(VmError, match=r"127\.0\.0\.1"):
        command(VmConfig(image=Path("disk.img"), guest_forwards=(forward,)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: VmConfig(image=Path("a,b.img")),
        lambda: VmConfig(image=Path("d.img"), ssh_port=70000),
        lambda: VmConfig(image=Path("d.img"), memory_mib=16),
        lambda: VmConfig(image=Path("d.img"), cpus=0),
        lambda: VmConfig(image=Path("d.img"), extra_args=("-netdev", "user,id=x")),
        lambda: VmConfig(image=Path("d.img"), extra_args=("-nic",)),
        lambda: FwCfgEntry("etc/ignition", Path("c.json")),
        lambda: FwCfgEntry("opt/x,file=/etc/shadow", Path("c.json")),
        lambda: GuestForward("10.0.2.100", 0, 8080),
    ],
)
def test_bad_values_are_refused(make: object) -> None:
    with pytest.raises(VmError):
        make()  # type: ignore[operator]


def test_disk_size_needs_the_overlay_and_whole_mebibytes(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with pytest.raises(VmError, match="needs the copy-on-write overlay"):
        VmConfig(image=image, copy_on_write=False, disk_size=1 << 30)
    with pytest.raises(VmError, match="not a positive multiple of 1 MiB"):
        VmConfig(image=image, disk_size=(1 << 30) + 1)


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
def test_the_overlay_has_the_requested_size_and_refuses_less_than_the_image(
    tmp_path: Path,
) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(64 << 20)
    vm = Vm(VmConfig(image=image, disk_size=256 << 20))
    overlay = vm._prepare().disk
    argv = ["qemu-img", "info", "--output=json", str(overlay)]
    info = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert info["virtual-size"] == 256 << 20
    vm.close()
    with pytest.raises(VmError, match="smaller than the image"):
        Vm(VmConfig(image=image, disk_size=32 << 20))._prepare()
