"""A running QEMU VM: start, read its serial console, ssh in, power it down or pull the plug."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from wellcar.vm.config import (
    LOOPBACK,
    Accelerator,
    DiskFormat,
    Firmware,
    RunFiles,
    VmConfig,
    VmError,
    build_qemu_command,
)
from wellcar.vm.kvm import resolve_accelerator

# Cursor moves, colours and screen clears that firmware menus write to the serial console.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
POLL_SECONDS = 0.05
QMP_TIMEOUT_SECONDS = 5.0
TAIL_LINES_IN_ERRORS = 5


class VmTimeoutError(VmError):
    """The serial console did not show the expected line in time."""


class VmExitedError(VmError):
    """QEMU ended while we were waiting for it."""


def clean_console_text(text: str) -> str:
    """Serial text without terminal escapes and carriage returns, for matching and reading."""
    return ANSI_ESCAPE.sub("", text).replace("\r", "")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for ssh_port and test servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class Vm:
    """One VM. start() may be called again after stop()/kill(): the disk overlay survives."""

    def __init__(self, config: VmConfig) -> None:
        self.config = config
        self._run_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._files: RunFiles | None = None
        self._read_offset = 0
        self._pending = ""  # serial text after the last newline, not yet a whole line
        self.accelerator: Accelerator | None = None
        self.command: list[str] = []
        self._stderr_path: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def serial_log(self) -> Path:
        if self._files is None:
            raise VmError("the VM has not been started")
        return self._files.serial_log

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _prepare(self) -> RunFiles:
        """Make the per-VM files once: VARS copy, overlay, empty serial log, socket path."""
        if self._files is not None:
            return self._files
        config = self.config
        if not config.image.is_file():
            raise VmError(f"disk image {config.image} does not exist")
        uefi = config.firmware is Firmware.UEFI
        for firmware in (config.ovmf_code, config.ovmf_vars_template) if uefi else ():
            if not firmware.is_file():
                raise VmError(f"OVMF firmware {firmware} not found (Debian package ovmf)")
        if shutil.which(config.qemu_binary) is None:
            raise VmError(f"{config.qemu_binary} not found (Debian package qemu-system-x86)")
        # Under /tmp rather than a caller's directory: unix socket paths are limited to ~107 bytes.
        self._run_dir = Path(tempfile.mkdtemp(prefix="wellcar-vm-"))
        ovmf_vars = self._run_dir / "OVMF_VARS.fd" if uefi else None
        if ovmf_vars is not None:
            # The firmware writes its variables (boot order, ...): never into the shared
            # template.
            shutil.copyfile(config.ovmf_vars_template, ovmf_vars)
        disk, disk_format = config.image.resolve(), config.image_format
        if config.copy_on_write:
            disk, disk_format = self._run_dir / "overlay.qcow2", DiskFormat.QCOW2
            self._create_overlay(disk)
        serial_log = config.serial_log or self._run_dir / "serial.log"
        serial_log.parent.mkdir(parents=True, exist_ok=True)
        # Truncate once: QEMU appends, so a restart adds to this boot's log, not an old one.
        serial_log.write_bytes(b"")
        self._files = RunFiles(
            disk=disk,
            disk_format=disk_format,
            ovmf_vars=ovmf_vars,
            serial_log=serial_log,
            qmp_socket=self._run_dir / "qmp.sock",
        )
        return self._files

    def _create_overlay(self, overlay: Path) -> None:
        if shutil.which("qemu-img") is None:
            raise VmError("qemu-img not found (Debian package qemu-utils)")
        base = self.config.image.resolve()
        create = ["qemu-img", "create", "-q", "-f", "qcow2"]
        backing = ["-F", self.config.image_format.value, "-b", str(base)]
        wanted = self.config.disk_size
        if wanted is not None and base.stat().st_size > wanted:
            raise VmError(
                f"disk size {wanted} is smaller than the image ({base.stat().st_size} bytes)"
            )
        size = [] if wanted is None else [str(wanted)]
        result = subprocess.run(
            [*create, *backing, str(overlay), *size],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise VmError(f"qemu-img could not create an overlay: {result.stderr.strip()}")

    def start(self) -> None:
        if self.is_running():
            raise VmError("the VM is already running")
        files = self._prepare()
        self.accelerator = resolve_accelerator(self.config.accelerator, self.config.qemu_binary)
        self.command = build_qemu_command(self.config, files, self.accelerator)
        files.qmp_socket.unlink(missing_ok=True)
        assert self._run_dir is not None
        self._stderr_path = self._run_dir / "qemu-stderr.log"
        with self._stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Own session: a Ctrl-C meant for the caller must not kill QEMU before stop().
                start_new_session=True,
            )

    def _qemu_stderr(self) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        return self._stderr_path.read_text(errors="replace").strip()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for QEMU to end; its exit status, or None if it still runs after timeout."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL QEMU: a power loss for the guest."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """ACPI power button through QMP, wait up to timeout, then kill. QEMU's exit status."""
        if not self.is_running():
            return self.wait()
        # QEMU may be exiting already; the wait and kill below end it either way.
        with contextlib.suppress(VmError):
            self.qmp("system_powerdown")
        status = self.wait(timeout)
        if status is None:
            self.kill()
            status = self.wait()
        return status

    def close(self) -> None:
        """Stop (briefly) and remove the run directory with its overlay and VARS copy."""
        self.stop(timeout=5.0)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self._run_dir = None
        self._files = None

    def __enter__(self) -> Self:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- QMP ---------------------------------------------------------------------------------

    def qmp(self, command: str) -> object:
        """Send one QMP command (after the capabilities handshake) and return its result."""
        if self._files is None or not self.is_running():
            raise VmError("the VM is not running")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(QMP_TIMEOUT_SECONDS)
                connection.connect(str(self._files.qmp_socket))
                reader = connection.makefile("r", encoding="utf-8")
                reader.readline()  # the greeting
                for name in ("qmp_capabilities", command):
                    connection.sendall(json.dumps({"execute": name}).encode() + b"\n")
                    while True:
                        reply = json.loads(reader.readline() or "{}")
                        if "event" not in reply:  # events may arrive between replies
                            break
                    if "error" in reply or "return" not in reply:
                        raise VmError(f"QMP {name} failed: {reply.get('error', reply)}")
                return reply["return"]
        except (OSError, ValueError) as exc:
            raise VmError(f"QMP {command} failed: {exc}") from exc

    # -- serial console ----------------------------------------------------------------------

    def _read_new_lines(self) -> list[str]:
        with self.serial_log.open("rb") as log:
            log.seek(self._read_offset)
            data = log.read()
        self._read_offset += len(data)
        text = self._pending + data.decode("utf-8", errors="replace")
        *lines, self._pending = text.split("\n")
        return [clean_console_text(line) for line in lines]

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> str:
        """The next serial line (escapes removed) that matches pattern (re.search).

        Reading continues where the previous call stopped, so successive waits follow the boot
        in order. The unfinished last line is matched too, for prompts without a newline.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.is_running()  # read once more after an exit: output may be late
            for line in self._read_new_lines():
                if regex.search(line):
                    return line
            partial = clean_console_text(self._pending)
            if partial and regex.search(partial):
                self._pending = ""
                return partial
            if exited:
                raise VmExitedError(
                    f"QEMU exited (status {self.wait()}) before {regex.pattern!r} appeared; "
                    f"stderr: {self._qemu_stderr() or 'empty'}"
                )
            if time.monotonic() >= deadline:
                raise VmTimeoutError(
                    f"{regex.pattern!r} not on the serial console within {timeout:g} s; "
                    f"last lines: {self._tail()!r}"
                )
            time.sleep(POLL_SECONDS)

    def _tail(self) -> list[str]:
        text = clean_console_text(self.serial_log.read_bytes().decode("utf-8", "replace"))
        return [line for line in text.splitlines() if line.strip()][-TAIL_LINES_IN_ERRORS:]

    # -- ssh ---------------------------------------------------------------------------------

    def ssh_command(self, command: str, user: str = "core", key: Path | None = None) -> list[str]:
        if self.config.ssh_port is None:
            raise VmError("the VM has no ssh port (set VmConfig.ssh_port)")
        argv = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        # BatchMode: a missing key must fail, not wait for a password nobody will type.
        argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        if key is not None:
            argv += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        argv += ["-p", str(self.config.ssh_port), f"{user}@{LOOPBACK}", "--", command]
        return argv

    def ssh(
        self,
        command: str,
        user: str = "core",
        key: Path | None = None,
        timeout: float | None = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run command in the guest over the forwarded port; output captured as text."""
        argv = self.ssh_command(command, user, key)
        if shutil.which("ssh") is None:
            raise VmError("the ssh client is not installed (Debian package openssh-client)")
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
