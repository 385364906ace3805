"""Image benchmark: build times, sizes, boot-to-ready against plain Debian, update time.

Everything real, on this machine, in one run (work directory /var/tmp/wc-bench):

1. build time of version N cold (an empty package cache in the work directory; the Debian
   mirror is the same) and warm (the normal package cache, already filled by one build),
   per build step, with the ratio warm/cold and the number of .debs each build downloaded;
2. sizes of disk.img (apparent and allocated), usr.img, vmlinuz, initrd.img and the full
   update.payload (zstd level 3, as the system tests build it);
3. boot-to-ready of our image against a plain Debian image (bench/image_plain.py) with the
   same kernel package from the same mirror, in the same QEMU (TCG, same memory and CPUs):
   seconds from QEMU's start to the ``login:`` prompt on the serial console and to sshd
   answering (``ssh root@... true`` succeeds), the first boot (ours includes Ignition
   provisioning) and a second boot after a clean ``systemctl poweroff``; ratios ours/plain;
4. update grant to healthy: a VM on N with `wellcar serve` and a payload mirror on
   127.0.0.1 (as tests/system/test_update_in_vm.py), N+1 published; t0 = the server first
   shows the instance UPDATE_GRANTED or DOWNLOADING (polled every 0.5 s), t1 = it shows
   COMPLETE on N+1; the split from the server's status history and the serial console.

N and N+1 are the system tests' pair (tests/system/builds.py: one package upgraded, signed
with a key made here); ``--builds DIR`` reuses a pair built before. Before every build and
boot the bench waits until no other ``qemu-system-x86_64`` or ``mmdebstrap`` runs (up to
``--max-wait`` seconds), so other test runs neither skew the figures nor get slowed down.

    .venv/bin/python bench/image.py [--builds DIR] [--skip-build-times] [--skip-boot]
                                    [--skip-update] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.system.builds import HELD, NEW_LIBSSL, OLD_LIBSSL, VERSION_N, VERSION_N1  # noqa: E402
from tests.system.test_update_in_vm import (  # noqa: E402
    GUEST_SERVER,
    MIRROR_PORT,
    SERVER_PORT,
    Fleet,
    ignition_config,
    update_server,
    wait_until,
)

from image_plain import PlainImage, build_plain_image  # noqa: E402
from wellcar.disk import USR_B_UUID  # noqa: E402
from wellcar.image import BuildResult, build, resolve_settings  # noqa: E402
from wellcar.image.dev_keys import DevKeys, with_dev_keys  # noqa: E402
from wellcar.server.fleet_codes import InstanceStatus  # noqa: E402
from wellcar.vm import FwCfgEntry, GuestForward, Vm, VmConfig, free_loopback_port  # noqa: E402
from wellcar.vm.config import Accelerator  # noqa: E402
from wellcar.vm.kvm import resolve_accelerator  # noqa: E402

MIB = 1 << 20
NORMAL_CACHE = Path(os.environ.get("WELLCAR_PACKAGE_CACHE",
                                   Path.home() / ".cache/wellcar/packages"))  # fmt: skip
IGNITION_NAME = "opt/org.flatcar-linux/config"
LOGIN = r"login:\s*$"
OTHERS = ("qemu-system-x86_64", "mmdebstrap")


# --- coordination -------------------------------------------------------------------------


def _ours(pid: int) -> bool:
    """Whether pid descends from this process (our own VM or build)."""
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent, after "(comm) state"
    return False


def others_running() -> list[str]:
    """Command lines of other QEMU and mmdebstrap processes (our own children excluded)."""
    found: list[str] = []
    for name in OTHERS:
        out = subprocess.run(["pgrep", "-af", name], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.strip() and not _ours(int(line.split()[0])):
                found.append(line[:120])
    return found


def wait_for_quiet(what: str, max_wait: float) -> float:
    """Wait until no other QEMU or mmdebstrap runs (poll every 10 s); the seconds waited."""
    started = time.monotonic()
    busy = others_running()
    if not busy:
        return 0.0
    print(f"  [waiting before {what}: {len(busy)} other process(es), e.g. {busy[0]}]",
          flush=True)  # fmt: skip
    while busy and time.monotonic() - started < max_wait:
        time.sleep(10)
        busy = others_running()
    waited = time.monotonic() - started
    if busy:
        print(f"  [still busy after {waited:.0f} s; measuring anyway: {busy[0]}]", flush=True)
    else:
        print(f"  [waited {waited:.0f} s for other QEMU/mmdebstrap runs to finish]", flush=True)
    return waited


# --- builds ---------------------------------------------------------------------------------


def dev_keys_at(builds: Path) -> DevKeys:
    """The development key set the builds are made with (as `wellcar build` with no key)."""
    return DevKeys(builds / "dev-keys")


@dataclass(frozen=True)
class TimedBuild:
    label: str
    seconds: float  # wall clock of build()
    steps: dict[str, float]
    downloaded: int  # .debs the package cache gained


def count_debs(cache: Path) -> int:
    return sum(1 for _ in cache.glob("*.deb")) if cache.is_dir() else 0


def build_version(version: str, libssl: str, output: Path, keys: DevKeys, cache: Path
                  ) -> BuildResult:  # fmt: skip
    """The system tests' build of version (tests/system/builds.build_os), with cache."""
    settings = resolve_settings(
        None,
        {
            "version": version,
            "payload_zstd_level": "3",
            "extra_packages": ",".join((f"libssl3={libssl}", *HELD)),
        },
    )
    settings, _ = with_dev_keys(dataclasses.replace(
        settings, output=output, package_cache=cache, dev_keys_dir=keys.directory))  # fmt: skip
    return build(settings)


def timed_build(label: str, version: str, libssl: str, output: Path, keys: DevKeys, cache: Path,
                max_wait: float) -> tuple[TimedBuild, BuildResult]:  # fmt: skip
    wait_for_quiet(f"the {label} build", max_wait)
    before = count_debs(cache)
    started = time.monotonic()
    result = build_version(version, libssl, output, keys, cache)
    seconds = time.monotonic() - started
    timed = TimedBuild(label, seconds, dict(result.seconds), count_debs(cache) - before)
    print(f"  {label} build of {version}: {seconds:.1f} s, {timed.downloaded} .debs downloaded",
          flush=True)  # fmt: skip
    return timed, result


def pair_ready(builds: Path) -> bool:
    return (
        all((builds / v / "SHA256SUMS").is_file() for v in (VERSION_N, VERSION_N1))
        and dev_keys_at(builds).complete()
    )


def print_build_times(cold: TimedBuild, warm: TimedBuild) -> None:
    print(f"\n## Build times (version {VERSION_N})\n")
    print(f"{'step':<16}{'cold s':>10}{'warm s':>10}{'warm/cold':>11}")
    for step in dict.fromkeys([*cold.steps, *warm.steps]):
        c, w = cold.steps.get(step, 0.0), warm.steps.get(step, 0.0)
        ratio = f"{w / c:.2f}" if c > 0.05 else "-"
        print(f"{step:<16}{c:>10.1f}{w:>10.1f}{ratio:>11}")
    print(f"{'total (wall)':<16}{cold.seconds:>10.1f}{warm.seconds:>10.1f}"
          f"{warm.seconds / cold.seconds:>11.2f}")  # fmt: skip
    print(f".debs downloaded: cold {cold.downloaded}, warm {warm.downloaded}")


# --- sizes ----------------------------------------------------------------------------------


def file_sizes(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_blocks * 512


def print_sizes(builds: Path, plain: PlainImage | None) -> dict[str, tuple[int, int]]:
    rows: dict[str, tuple[int, int]] = {}
    n, n1 = builds / VERSION_N, builds / VERSION_N1
    for name in ("disk.img", "usr.img", "vmlinuz", "initrd.img", "update.payload"):
        rows[f"{VERSION_N} {name}"] = file_sizes(n / name)
    rows[f"{VERSION_N1} update.payload"] = file_sizes(n1 / "update.payload")
    if plain is not None:
        rows["plain Debian disk.img"] = file_sizes(plain.disk)
        rows["plain Debian initrd.img"] = file_sizes(plain.initrd)
    print("\n## Sizes\n")
    print(f"{'file':<32}{'apparent MiB':>14}{'allocated MiB':>15}{'bytes':>16}")
    for name, (apparent, allocated) in rows.items():
        print(f"{name:<32}{apparent / MIB:>14.1f}{allocated / MIB:>15.1f}{apparent:>16,}")
    return rows


# --- boots ----------------------------------------------------------------------------------


@dataclass
class Console:
    """Follows a serial log from an offset in a thread; records when (time.monotonic and
    time.time) each pattern first appears, a pattern being armed once its predecessor
    (``after``) has been seen."""

    log: Path
    patterns: list[tuple[str, str, str | None]]
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)
    offset: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Console:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pending = ""
        compiled = [(name, re.compile(rx), after) for name, rx, after in self.patterns]
        while not self._stop.is_set():
            data = b""
            if self.log.exists():
                with self.log.open("rb") as f:
                    f.seek(self.offset)
                    data = f.read()
                self.offset += len(data)
            text = pending + data.decode("utf-8", "replace")
            *lines, pending = text.split("\n")
            lines.append(pending)  # prompts come without a newline
            now = (time.monotonic(), time.time())
            for line in lines:
                clean = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", line)
                for name, regex, after in compiled:
                    armed = after is None or after in self.seen
                    if name not in self.seen and armed and regex.search(clean):
                        self.seen[name] = now
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass(frozen=True)
class BootTime:
    label: str
    login: float
    ssh: float
    disturbed: bool  # another QEMU or mmdebstrap ran at the end of the boot


def ssh_ok(vm: Vm, key: Path, command: str = "true") -> bool:
    try:
        return vm.ssh(command, user="root", key=key, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def measure_boot(vm: Vm, key: Path, label: str, timeout: float, max_wait: float) -> BootTime:
    """Start the VM; seconds from QEMU's start to the login prompt and to ssh answering."""
    wait_for_quiet(label, max_wait)
    log = vm.config.serial_log
    assert log is not None
    console = Console(log, [("login", LOGIN, None)]).start()
    started = time.monotonic()
    vm.start()
    try:
        deadline = started + timeout
        while not ssh_ok(vm, key):
            if not vm.is_running() or time.monotonic() > deadline:
                raise RuntimeError(f"{label}: no ssh after {timeout:.0f} s; see {log}")
            time.sleep(0.5)
        ssh_at = time.monotonic()
        while "login" not in console.seen and time.monotonic() < ssh_at + 120:
            time.sleep(0.2)
    finally:
        console.stop()
    login = console.seen["login"][0] - started if "login" in console.seen else float("nan")
    boot = BootTime(label, login, ssh_at - started, bool(others_running()))
    note = "  [another QEMU/mmdebstrap started meanwhile]" if boot.disturbed else ""
    print(f"  {label}: login prompt {boot.login:.1f} s, ssh {boot.ssh:.1f} s{note}", flush=True)
    return boot


def power_off(vm: Vm, key: Path) -> None:
    """A clean shutdown from inside; QMP power button and kill as fallbacks."""
    with suppress(subprocess.TimeoutExpired):
        vm.ssh("systemctl poweroff", user="root", key=key, timeout=30)
    if vm.wait(300) is None:
        vm.stop(timeout=60)


def guest_facts(vm: Vm, key: Path) -> str:
    done = vm.ssh("uname -r; systemd-analyze | head -1", user="root", key=key, timeout=60)
    return done.stdout.strip()


@contextmanager
def running(config: VmConfig) -> Iterator[Vm]:
    vm = Vm(config)
    try:
        yield vm
    finally:
        vm.close()


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def boot_twice(config: VmConfig, key: Path, name: str, timeout: float, max_wait: float
               ) -> tuple[list[BootTime], str]:  # fmt: skip
    times: list[BootTime] = []
    facts = ""
    assert config.serial_log is not None
    config.serial_log.unlink(missing_ok=True)  # Console offsets start from an empty log
    with running(config) as vm:
        for n in (1, 2):
            times.append(measure_boot(vm, key, f"{name}, boot {n}", timeout, max_wait))
            if n == 1:
                facts = guest_facts(vm, key)
            power_off(vm, key)
    return times, facts


def our_kernel_package(builds: Path) -> str:
    text = (builds / VERSION_N / "packages.txt").read_text()
    found = re.findall(r"^(linux-image-[0-9][^=\s]*)=(\S+)", text, re.M)
    return " ".join(f"{name} {version}" for name, version in found)


def boot_benchmark(args: argparse.Namespace, builds: Path, key: Path
                   ) -> tuple[dict[str, Any], PlainImage]:  # fmt: skip
    work: Path = args.work
    public_key = key.with_suffix(".pub").read_text().strip()
    wait_for_quiet("the plain Debian image build", args.max_wait)
    plain = build_plain_image(work / "plain", public_key, NORMAL_CACHE)
    print(f"  plain Debian image: {plain.packages} packages, tree {plain.tree_bytes / MIB:.0f} "
          f"MiB, mmdebstrap {plain.mmdebstrap_seconds:.1f} s, image {plain.image_seconds:.1f} s",
          flush=True)  # fmt: skip
    ours_kernel = builds / VERSION_N / "vmlinuz"
    same_kernel = sha256(ours_kernel) == sha256(plain.kernel)

    # Ours: provisioned with Ignition (root's ssh key), as in the system test.
    ignition = work / "boot-ignition.json"
    ignition.write_text(json.dumps({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "root", "sshAuthorizedKeys": [public_key]}]},
    }))  # fmt: skip
    common: dict[str, Any] = {"memory_mib": args.memory, "cpus": args.cpus}
    ours_config = VmConfig(
        image=builds / VERSION_N / "disk.img", ssh_port=free_loopback_port(),
        fw_cfg=(FwCfgEntry(IGNITION_NAME, ignition),), serial_log=work / "serial-ours.log",
        **common,
    )  # fmt: skip
    plain_config = VmConfig(image=plain.disk, ssh_port=free_loopback_port(),
                            serial_log=work / "serial-plain.log", **common)  # fmt: skip
    ours, ours_facts = boot_twice(ours_config, key, "Wellcar", args.boot_timeout, args.max_wait)
    theirs, plain_facts = boot_twice(plain_config, key, "plain Debian", args.boot_timeout,
                                     args.max_wait)  # fmt: skip

    print(f"\n## Boot to ready ({args.memory} MiB, {args.cpus} vCPUs; seconds from QEMU start)\n")
    print(f"kernel package (ours): {our_kernel_package(builds)}")
    print(f"plain Debian kernel: {plain.kernel.name}; vmlinuz byte-identical: {same_kernel}")
    print(f"guest, ours:  {' | '.join(ours_facts.splitlines())}")
    print(f"guest, plain: {' | '.join(plain_facts.splitlines())}")
    print(f"initrd: ours {file_sizes(builds / VERSION_N / 'initrd.img')[0] / MIB:.1f} MiB, "
          f"plain {file_sizes(plain.initrd)[0] / MIB:.1f} MiB\n")  # fmt: skip
    print(f"{'boot':<10}{'measure':<16}{'Wellcar':>10}{'plain':>10}{'ratio':>8}")
    rows: dict[str, Any] = {}
    for i, label in enumerate(("first", "second")):
        for measure in ("login", "ssh"):
            a, b = getattr(ours[i], measure), getattr(theirs[i], measure)
            print(f"{label:<10}{measure + ' prompt' if measure == 'login' else 'ssh true':<16}"
                  f"{a:>10.1f}{b:>10.1f}{a / b:>8.2f}")  # fmt: skip
            rows[f"{label}_{measure}"] = {"ours": a, "plain": b, "ratio": a / b}
    print("(our first boot includes Ignition provisioning, growing ROOT and making host keys)")
    result = {
        "same_kernel": same_kernel, "ours_facts": ours_facts, "plain_facts": plain_facts,
        "boots": [dataclasses.asdict(b) for b in (*ours, *theirs)], "table": rows,
    }  # fmt: skip
    return result, plain


# --- update ---------------------------------------------------------------------------------


def update_ignition(public_key: str) -> dict[str, Any]:
    """The system test's config without its container unit: the ssh keys and update.conf
    (server through guestfwd, check every 15 s, boot assessment grace 10 s)."""
    config = ignition_config(public_key)
    config.pop("systemd", None)
    storage = config["storage"]
    assert isinstance(storage, dict)
    storage["files"] = [f for f in storage["files"] if "update.conf" in f["path"]]
    return config


def update_benchmark(args: argparse.Namespace, builds: Path, key: Path) -> dict[str, Any]:
    work: Path = args.work / "update"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config_file = work / "config.ign"
    public_key = key.with_suffix(".pub").read_text().strip()
    config_file.write_text(json.dumps(update_ignition(public_key)))
    n, n1 = builds / VERSION_N, builds / VERSION_N1
    print("\n## Update grant to healthy (N -> N+1, full payload "
          f"{(n1 / 'update.payload').stat().st_size / MIB:.1f} MiB)\n", flush=True)  # fmt: skip
    with update_server(work, dev_keys_at(builds)) as (fleet, server_port):
        fleet.publish(VERSION_N, n / "update.payload", n)
        config = VmConfig(
            image=n / "disk.img", memory_mib=args.memory, cpus=args.cpus,
            ssh_port=free_loopback_port(),
            disk_size=8 << 30,  # ROOT grows into it on first boot: room for the download
            guest_forwards=(
                GuestForward(GUEST_SERVER, SERVER_PORT, server_port),
                GuestForward(GUEST_SERVER, MIRROR_PORT, fleet.mirror.port),
            ),
            fw_cfg=(FwCfgEntry(IGNITION_NAME, config_file),), serial_log=work / "serial.log",
        )  # fmt: skip
        wait_for_quiet("the update VM", args.max_wait)
        (work / "serial.log").unlink(missing_ok=True)
        with running(config) as vm:
            vm.start()
            deadline = time.monotonic() + args.boot_timeout
            while not ssh_ok(vm, key):
                if time.monotonic() > deadline or not vm.is_running():
                    raise RuntimeError(f"the update VM did not answer ssh; see {vm.serial_log}")
                time.sleep(2)
            checked_in = wait_until("the agent's check-in on N", fleet.instance, 600, every=1)
            instance_id = checked_in[0]
            console = Console(vm.serial_log, [
                ("restart", r"reboot: Restarting system", None),
                ("usr_b", f"wellcar: /usr is PARTUUID={USR_B_UUID}", None),
                ("login", LOGIN, "usr_b"),
            ]).start()  # fmt: skip
            published = time.time()
            fleet.publish(VERSION_N1, n1 / "update.payload", n1)
            seen = poll_update(fleet, args.update_timeout)
            console.stop()
            history = fleet.api.status_history(fleet.app, fleet.group, instance_id, limit=50)
            slot_version = vm.ssh(". /usr/lib/os-release; echo $VERSION_ID; cat /proc/cmdline",
                                  user="root", key=key, timeout=60).stdout.split()  # fmt: skip
            power_off(vm, key)
    return report_update(published, seen, console, history, slot_version)


def poll_update(fleet: Fleet, timeout: float) -> dict[str, float]:
    """First wall-clock time the server showed each (status) while polling every 0.5 s;
    'grant' = UPDATE_GRANTED or DOWNLOADING, 'complete' = COMPLETE on N+1."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while "complete" not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no COMPLETE on {VERSION_N1} within {timeout:.0f} s: {seen}")
        found = fleet.instance()
        now = time.time()
        if found is not None:
            _, version, status = found
            if status is not None:
                seen.setdefault(status.name, now)
            if status in (InstanceStatus.UPDATE_GRANTED, InstanceStatus.DOWNLOADING):
                seen.setdefault("grant", now)
            if status is InstanceStatus.COMPLETE and version == VERSION_N1 and "grant" in seen:
                seen["complete"] = now
        time.sleep(0.5)
    return seen


def report_update(published: float, seen: dict[str, float], console: Console,
                  history: list[Any], slot_version: list[str]) -> dict[str, Any]:  # fmt: skip
    t0, t1 = seen["grant"], seen["complete"]
    print(f"publish -> grant seen (next check-in): {t0 - published:.1f} s")
    print(f"**grant -> COMPLETE on {VERSION_N1} (polled every 0.5 s): {t1 - t0:.1f} s**")
    print(
        f"node now runs {slot_version[0] if slot_version else '?'} "
        f"({next((w for w in slot_version if w.startswith('wellcar.slot=')), '?')})\n"
    )
    # The server's own history: every status change with its timestamp.
    events: list[tuple[str, float]] = []
    for entry in sorted(history, key=lambda e: e.created_ts):
        stamp = entry.created_ts.replace(tzinfo=UTC).timestamp()  # naive UTC from the API
        if stamp >= published - 1:
            events.append((f"server: {InstanceStatus(entry.status).name} ({entry.version})",
                           stamp))  # fmt: skip
    names = {"restart": "console: reboot: Restarting system",
             "usr_b": "console: initrd mounted /usr from slot B",
             "login": "console: login prompt (new version)"}  # fmt: skip
    events += [(names[k], wall) for k, (_, wall) in console.seen.items()]
    events.sort(key=lambda e: e[1])
    base = events[0][1] if events else t0
    print(f"{'event':<52}{'t (s)':>8}{'step (s)':>10}")
    previous = base
    rows = []
    for name, stamp in events:
        print(f"{name:<52}{stamp - base:>8.1f}{stamp - previous:>10.1f}")
        rows.append({"event": name, "t": stamp - base})
        previous = stamp
    status_at = {name.split(": ")[1].split(" ")[0]: stamp for name, stamp in events
                 if name.startswith("server:")}  # fmt: skip
    split: dict[str, float] = {}

    def span(label: str, a: float | None, b: float | None) -> None:
        if a is not None and b is not None:
            split[label] = b - a

    con = {k: wall for k, (_, wall) in console.seen.items()}
    span("download", status_at.get("DOWNLOADING"), status_at.get("DOWNLOADED"))
    span("install (verify + write slot B)", status_at.get("DOWNLOADED"), status_at.get("INSTALLED"))
    span("installed -> reboot starts", status_at.get("INSTALLED"), con.get("restart"))
    span("reboot -> /usr B mounted", con.get("restart"), con.get("usr_b"))
    span("/usr B -> login prompt", con.get("usr_b"), con.get("login"))
    span("login -> COMPLETE (health)", con.get("login"), status_at.get("COMPLETE"))
    print("\nsplit:")
    for label, seconds in split.items():
        print(f"  {label:<34}{seconds:>8.1f} s")
    return {"publish_to_grant": t0 - published, "grant_to_complete": t1 - t0,
            "events": rows, "split": split}  # fmt: skip


# --- main -----------------------------------------------------------------------------------


def ensure_key(work: Path) -> Path:
    key = work / "id_ed25519"
    if not key.is_file():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)  # fmt: skip
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/wc-bench"),
                        help="work directory (builds are GBs: not /tmp)")  # fmt: skip
    parser.add_argument("--builds", type=Path, default=None,
                        help="directory with N and N+1 from build_pair (reused when complete, "
                             "else built there) [default: WORK/builds]")  # fmt: skip
    parser.add_argument("--skip-build-times", action="store_true",
                        help="no cold/warm build timing")  # fmt: skip
    parser.add_argument("--skip-boot", action="store_true", help="no boot comparison")
    parser.add_argument("--skip-update", action="store_true", help="no update timing")
    parser.add_argument("--memory", type=int, default=2048, help="MiB per VM")
    parser.add_argument("--cpus", type=int, default=2, help="vCPUs per VM")
    parser.add_argument("--boot-timeout", type=float, default=900.0)
    parser.add_argument("--update-timeout", type=float, default=1800.0)
    parser.add_argument("--max-wait", type=float, default=3600.0,
                        help="longest wait for other QEMU/mmdebstrap runs to end")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("image builds need root (mmdebstrap --mode=root)")
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    builds: Path = args.builds or work / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    keys = dev_keys_at(builds)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "cpus_host": os.cpu_count()}  # fmt: skip
    need_pair = not (args.skip_boot and args.skip_update)
    print(f"# Wellcar image benchmark ({report['started']}, {os.cpu_count()} cores)", flush=True)

    cold = warm = None
    if not args.skip_build_times:
        cold_dir = work / "cold"
        shutil.rmtree(cold_dir, ignore_errors=True)
        cold_cache = cold_dir / "cache"
        cold_cache.mkdir(parents=True)
        cold, _ = timed_build("cold", VERSION_N, OLD_LIBSSL, cold_dir / VERSION_N, keys,
                              cold_cache, args.max_wait)  # fmt: skip
        shutil.rmtree(cold_dir, ignore_errors=True)
    if (need_pair or not args.skip_build_times) and not pair_ready(builds):
        warm, _ = timed_build("warm", VERSION_N, OLD_LIBSSL, builds / VERSION_N, keys,
                              NORMAL_CACHE, args.max_wait)  # fmt: skip
        timed_build("warm", VERSION_N1, NEW_LIBSSL, builds / VERSION_N1, keys, NORMAL_CACHE,
                    args.max_wait)  # fmt: skip
    elif not args.skip_build_times:
        warm_dir = work / "warm"
        warm, _ = timed_build("warm", VERSION_N, OLD_LIBSSL, warm_dir / VERSION_N, keys,
                              NORMAL_CACHE, args.max_wait)  # fmt: skip
        shutil.rmtree(warm_dir, ignore_errors=True)
    if cold is not None and warm is not None:
        print_build_times(cold, warm)
        report["builds"] = {"cold": dataclasses.asdict(cold), "warm": dataclasses.asdict(warm)}

    key = ensure_key(work)
    if need_pair:
        # Probe KVM now (cached per process), so no boot timing includes the probe.
        wait_for_quiet("the KVM probe", args.max_wait)
        print(f"accelerator: {resolve_accelerator(Accelerator.AUTO).value}", flush=True)
    plain: PlainImage | None = None
    if not args.skip_boot:
        print("\nboot comparison:", flush=True)
        report["boot"], plain = boot_benchmark(args, builds, key)
    if pair_ready(builds):
        report["sizes"] = print_sizes(builds, plain)
    if not args.skip_update:
        report["update"] = update_benchmark(args, builds, key)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
