"""Live media benchmark: ISO and PXE artifact sizes; PXE boot to ready against a disk boot.

From one finished build directory (``--build``, e.g. the system tests' N, or any
``wellcar build`` output), in one run:

1. the live artifacts are made (``wellcar.live.build_live_artifacts``, zstd level 3 as
   the tests, or ``--zstd-level``) and their sizes printed, with the build's disk.img
   (allocated bytes) and usr.img as the baseline;
2. boot to ready in the same QEMU (TCG, same memory and CPUs, same Ignition config over
   fw_cfg): the disk image (a copy-on-write overlay of disk.img) against a PXE-style
   direct kernel boot of live.vmlinuz with live-initrd.img + live-usr.cpio.zst; seconds
   from QEMU's start to the login prompt and to sshd answering; ratio PXE/disk.

Before each boot it waits until no other QEMU or mmdebstrap runs (bench/image.py), so
the two boots see the same machine.

    .venv/bin/python bench/live.py --build DIR [--work DIR] [--zstd-level N] [--skip-boot]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from image import ensure_key, measure_boot, power_off  # noqa: E402
from wellcar.live.artifacts import LiveInputs, build_live_artifacts  # noqa: E402
from wellcar.live.cmdline import live_kernel_command_line  # noqa: E402
from wellcar.vm import (  # noqa: E402
    IGNITION_FW_CFG_NAME,
    FwCfgEntry,
    Vm,
    VmConfig,
    free_loopback_port,
)

MiB = 1 << 20
MEMORY_MIB = 4096  # the live boot keeps /usr in RAM: the same memory for both boots


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--build", type=Path, required=True, help="a finished build directory")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/wc-bench-live"))
    parser.add_argument("--zstd-level", type=int, default=3)
    parser.add_argument("--skip-boot", action="store_true")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--max-wait", type=float, default=900.0)
    args = parser.parse_args(argv)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    live = build_live_artifacts(LiveInputs.from_build_dir(args.build), work / "live",
                                work=work / "tmp", zstd_level=args.zstd_level)  # fmt: skip
    print(f"sizes (MiB; zstd level {args.zstd_level}):")
    sizes = {
        "disk.img (allocated)": allocated(args.build / "disk.img"),
        "usr.img": (args.build / "usr.img").stat().st_size,
    }
    sizes |= {f.name: f.stat().st_size for f in live.files()}
    pxe = live.kernel.stat().st_size + live.initrd.stat().st_size + live.usr.stat().st_size
    sizes["PXE download (kernel + live initrd + /usr archive)"] = pxe
    for name, size in sizes.items():
        print(f"  {name}: {size / MiB:.1f}")
    result: dict[str, object] = {"sizes": sizes}
    if not args.skip_boot:
        result["boot"] = boot_benchmark(args, live.kernel, [live.initrd, live.usr], work)
    (work / "live-bench.json").write_text(json.dumps(result, indent=1))
    return 0


def boot_benchmark(
    args: argparse.Namespace, kernel: Path, initrds: list[Path], work: Path
) -> dict[str, float]:
    key = ensure_key(work)
    config = work / "bench.ign"
    config.write_text(json.dumps({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "root", "sshAuthorizedKeys": [
            key.with_suffix(".pub").read_text().strip()]}]},
    }))  # fmt: skip
    initrd = work / "pxe-initrd.img"
    with initrd.open("wb") as joined:
        for part in initrds:
            joined.write(part.read_bytes())
    fw_cfg = (FwCfgEntry(IGNITION_FW_CFG_NAME, config),)
    print("boot to ready (TCG, same QEMU, same config):")
    disk = VmConfig(image=args.build / "disk.img", memory_mib=MEMORY_MIB, cpus=2,
                    ssh_port=free_loopback_port(), fw_cfg=fw_cfg,
                    serial_log=work / "disk-serial.log")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.img"
        with empty.open("wb") as sink:
            sink.truncate(1 << 30)
        pxe = VmConfig(image=empty, memory_mib=MEMORY_MIB, cpus=2, ssh_port=free_loopback_port(),
                       fw_cfg=fw_cfg, serial_log=work / "pxe-serial.log",
                       extra_args=("-kernel", str(kernel), "-initrd", str(initrd),
                                   "-append", live_kernel_command_line()))  # fmt: skip
        times = {}
        for label, vm_config in (("disk", disk), ("pxe", pxe)):
            vm = Vm(vm_config)
            try:
                boot = measure_boot(vm, key, label, args.timeout, args.max_wait)
                power_off(vm, key)
            finally:
                vm.close()
            times[f"{label}_login"], times[f"{label}_ssh"] = boot.login, boot.ssh
    times["ratio_ssh"] = times["pxe_ssh"] / times["disk_ssh"]
    times["ratio_login"] = times["pxe_login"] / times["disk_login"]
    print(f"  PXE/disk: login {times['ratio_login']:.2f}, ssh {times['ratio_ssh']:.2f}")
    return times


if __name__ == "__main__":
    sys.exit(main())
