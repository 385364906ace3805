"""Is KVM usable here? Boot OVMF with no disk under KVM for a few seconds and watch the serial.

/dev/kvm can exist and still be useless: on some hosts (nested or broken virtualisation) a KVM
guest stops in early firmware with an emulation failure and prints nothing. A working KVM guest
reaches OVMF's console output in well under a second, so silence means "use TCG".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from wellcar.vm.config import OVMF_CODE, OVMF_VARS, QEMU_BINARY, Accelerator

DEFAULT_PROBE_SECONDS = 5.0
POLL_SECONDS = 0.1
# QEMU prints this on stderr when the guest hit an instruction KVM cannot run.
KVM_FAILURE_MARKERS = ("KVM internal error", "emulation failure")


@dataclass(frozen=True)
class KvmVerdict:
    usable: bool
    reason: str
    seconds: float


_verdicts: dict[str, KvmVerdict] = {}


def probe_kvm(
    qemu_binary: str = QEMU_BINARY,
    ovmf_code: Path = OVMF_CODE,
    ovmf_vars_template: Path = OVMF_VARS,
    timeout: float = DEFAULT_PROBE_SECONDS,
) -> KvmVerdict:
    """Run the probe now (no cache). Takes at most about timeout seconds."""
    started = time.monotonic()

    def verdict(usable: bool, reason: str) -> KvmVerdict:
        return KvmVerdict(usable, reason, round(time.monotonic() - started, 2))

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return verdict(False, "/dev/kvm is missing or not accessible")
    if shutil.which(qemu_binary) is None:
        return verdict(False, f"{qemu_binary} is not installed")
    with tempfile.TemporaryDirectory(prefix="wellcar-kvm-") as run_dir:
        run = Path(run_dir)
        vars_copy = run / "vars.fd"
        shutil.copyfile(ovmf_vars_template, vars_copy)
        serial = run / "serial.log"
        stderr_path = run / "stderr.log"
        command = [
            qemu_binary,
            "-machine",
            "q35",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "128",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-serial",
            f"file:{serial}",
        ]
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            deadline = started + timeout
            while time.monotonic() < deadline:
                if serial.exists() and serial.stat().st_size > 0:
                    return verdict(True, "OVMF wrote to the serial console under KVM")
                errors = stderr_path.read_text(errors="replace")
                if any(marker in errors for marker in KVM_FAILURE_MARKERS):
                    return verdict(False, "KVM guest failed in firmware (emulation failure)")
                if process.poll() is not None:
                    last = errors.strip().splitlines()[-1:] or ["no message"]
                    return verdict(False, f"QEMU exited under KVM: {last[0]}")
                time.sleep(POLL_SECONDS)
            return verdict(False, f"no firmware output under KVM within {timeout:g} s")
        finally:
            process.kill()
            process.wait()


def kvm_verdict(qemu_binary: str = QEMU_BINARY) -> KvmVerdict:
    """The probe's verdict, probed once per process and QEMU binary."""
    if qemu_binary not in _verdicts:
        _verdicts[qemu_binary] = probe_kvm(qemu_binary)
    return _verdicts[qemu_binary]


def resolve_accelerator(choice: Accelerator, qemu_binary: str = QEMU_BINARY) -> Accelerator:
    """kvm or tcg: auto asks the (cached) probe; an explicit choice is taken as given."""
    if choice is not Accelerator.AUTO:
        return choice
    return Accelerator.KVM if kvm_verdict(qemu_binary).usable else Accelerator.TCG
