"""Boot assessment: health verdicts (fake units, real commands) and the A/B lifecycle on a
simulated node (FileSlotBackend on a real disk image file)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.tiny_layout import TINY
from wellcar.agent.block_device_backend import BlockDeviceSlotBackend, HostPaths
from wellcar.agent.health import (
    DEFAULT_AGENT_UNIT,
    BootAssessor,
    BootOutcome,
    CommandCheck,
    CommandResult,
    HealthCheck,
    HealthCheckError,
    HealthStatus,
    SystemdRunner,
    assess_boot,
)
from wellcar.agent.simulated_node import FileSlotBackend, SimulatedBoot
from wellcar.disk import (
    USR_A_UUID,
    USR_B_UUID,
    ContentPhase,
    GptPrio,
    Slot,
    SlotState,
    SlotTable,
    create_disk_image,
)

UNITS = ("containerd.service", "docker.service", DEFAULT_AGENT_UNIT)
CHECK = HealthCheck(grace_period=60.0, poll_interval=5.0)


class FakeRunner(SystemdRunner):
    """Unit states from a table (a list is a sequence of answers, the last one repeated);
    commands run for real."""

    def __init__(self, states: Mapping[str, str | list[str]] | None = None) -> None:
        super().__init__()
        self.states: dict[str, str | list[str]] = {unit: "active" for unit in UNITS}
        # Lists are consumed as answers are given: copy them, the caller's stay intact.
        self.states.update(
            {k: list(v) if isinstance(v, list) else v for k, v in (states or {}).items()}
        )
        self.commands: list[Sequence[str]] = []

    def unit_state(self, unit: str) -> str:
        answer = self.states.get(unit, "inactive")
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    def run(self, command: Sequence[str], timeout: float) -> CommandResult:
        self.commands.append(command)
        return super().run(command, timeout)


HEALTHY: Mapping[str, str | list[str]] = {unit: "active" for unit in UNITS}
SICK: Mapping[str, str | list[str]] = {"docker.service": "failed"}


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ----------------------------------------------------------------------- verdicts


B, G, P = HealthStatus.BAD, HealthStatus.GOOD, HealthStatus.PENDING
AGENT = DEFAULT_AGENT_UNIT


@pytest.mark.parametrize(
    ("states", "elapsed", "status", "reasons"),
    [
        ({}, 0.0, G, ()),
        ({"docker.service": "reloading"}, 999.0, G, ()),
        # A failed unit is bad at once: no point waiting out the grace period.
        ({"docker.service": "failed"}, 0.0, B, ("docker.service is failed",)),
        # Queued units read "inactive" during boot: only pending while in grace.
        ({"docker.service": "inactive"}, 10.0, P, ("docker.service is inactive",)),
        ({"docker.service": "inactive"}, 60.0, B, ("docker.service is inactive",)),
        ({"containerd.service": "activating"}, 30.0, P, ("containerd.service is activating",)),
        ({"containerd.service": "activating"}, 61.0, B, ("containerd.service is activating",)),
        # The agent is running this very code: "activating" (not yet READY=1) is fine.
        ({AGENT: "activating"}, 999.0, G, ()),
        ({AGENT: "failed"}, 0.0, B, (f"{AGENT} is failed",)),
        ({"docker.service": "deactivating"}, 0.0, B, ("docker.service is deactivating",)),
        # Bad outranks pending.
        ({"docker.service": "failed", "containerd.service": "inactive"}, 0.0, B,
         ("docker.service is failed",)),
        ({"docker.service": "failed", "containerd.service": "failed"}, 0.0, B,
         ("containerd.service is failed", "docker.service is failed")),
    ],
)  # fmt: skip
def test_unit_states_make_the_verdict(
    states: Mapping[str, str | list[str]],
    elapsed: float,
    status: HealthStatus,
    reasons: tuple[str, ...],
) -> None:
    verdict = assess_boot(CHECK, FakeRunner(states), elapsed=elapsed)
    assert (verdict.status, verdict.reasons) == (status, reasons)
    assert [u.unit for u in verdict.units] == list(UNITS)


def test_without_elapsed_the_verdict_is_final() -> None:
    verdict = assess_boot(CHECK, FakeRunner({"docker.service": "inactive"}))
    assert verdict.status is HealthStatus.BAD


@pytest.mark.parametrize(
    ("argv", "elapsed", "status", "reason"),
    [
        (("/bin/true",), 0.0, HealthStatus.GOOD, None),
        (("/bin/false",), 0.0, HealthStatus.PENDING, "exited with status 1"),
        (("/bin/false",), 60.0, HealthStatus.BAD, "exited with status 1"),
        (("sh", "-c", "echo first; echo 'kubelet not ready' >&2; exit 3"), 99.0, HealthStatus.BAD,
         "exited with status 3: kubelet not ready"),
        (("/nonexistent/health-probe",), 99.0, HealthStatus.BAD, "could not run"),
    ],
)  # fmt: skip
def test_the_health_command_runs_for_real(
    argv: tuple[str, ...], elapsed: float, status: HealthStatus, reason: str | None
) -> None:
    check = HealthCheck(command=CommandCheck(argv, timeout=10), grace_period=60)
    verdict = assess_boot(check, FakeRunner(), elapsed=elapsed)
    assert verdict.status is status
    if reason is None:
        assert verdict.reasons == () and verdict.command is not None
        assert verdict.command.exit_code == 0
    else:
        assert len(verdict.reasons) == 1 and reason in verdict.reasons[0]


def test_a_hanging_health_command_is_killed_with_its_children() -> None:
    # The shell's child "sleep" keeps the output pipe open: without killing the whole
    # process group the runner would wait the full 30 s for it.
    check = HealthCheck(command=CommandCheck(("sh", "-c", "sleep 30; true"), timeout=0.3))
    started = time.monotonic()
    verdict = assess_boot(check, FakeRunner())
    assert time.monotonic() - started < 5
    assert verdict.status is HealthStatus.BAD
    assert verdict.command is not None and verdict.command.timed_out
    assert "did not finish within 0.3 s" in verdict.reasons[0]


def test_the_command_is_not_run_while_units_are_bad(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    check = HealthCheck(command=CommandCheck(("touch", str(marker))))
    verdict = assess_boot(check, FakeRunner(SICK), elapsed=0.0)
    assert verdict.status is HealthStatus.BAD and verdict.command is None
    assert not marker.exists()


def test_unit_states_come_from_systemctl_is_active(tmp_path: Path) -> None:
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\n[ "$1" = is-active ] || exit 64\n'
        'case "$2" in docker.service) echo active ;; *) echo failed; exit 3 ;; esac\n'
    )
    systemctl.chmod(0o755)
    runner = SystemdRunner(str(systemctl))
    assert runner.unit_state("docker.service") == "active"
    assert runner.unit_state("containerd.service") == "failed"  # non-zero exit, state kept
    missing = SystemdRunner(str(tmp_path / "no-systemctl")).unit_state("docker.service")
    assert missing.startswith("unknown")
    check = HealthCheck(required_units=("docker.service",))
    assert assess_boot(check, SystemdRunner(str(tmp_path / "no-systemctl"))).status is (
        HealthStatus.BAD
    )


def test_unusable_checks_are_refused() -> None:
    with pytest.raises(HealthCheckError):
        CommandCheck(())
    with pytest.raises(HealthCheckError):
        CommandCheck(("/bin/true",), timeout=0)
    with pytest.raises(HealthCheckError):
        HealthCheck(grace_period=-1)


# ------------------------------------------------------------------------ lifecycle


@dataclass
class Node:
    """A simulated machine with its agent's boot assessment."""

    backend: FileSlotBackend
    state_path: Path
    clock: FakeClock
    reboots: list[str]

    def assess(self, states: Mapping[str, str | list[str]] | None = None) -> BootAssessor:
        return BootAssessor(
            self.backend,
            CHECK,
            self.state_path,
            runner=FakeRunner(states),
            monotonic=self.clock.monotonic,
            sleep=self.clock.sleep,
        )

    def reboot(self) -> SimulatedBoot:
        """The harness reboots the machine (not counted as the agent's reboot request)."""
        before = len(self.reboots)
        self.backend.reboot()
        del self.reboots[before:]
        return self.backend.power_on()

    def table(self) -> SlotTable:
        return self.backend.slot_table()

    def install(self, version: str) -> Slot:
        table = self.table()
        target = table.update_target
        assert target is not None
        table.begin_write(target)
        table.mark_written(target)
        table.mark_verified(target, version, 4096, "cd" * 32)
        table.make_bootable(target)
        self.backend.write_boot_entry(target, version=version, tries=1)
        return target


@pytest.fixture
def node(tmp_path: Path) -> Node:
    image = tmp_path / "disk.img"
    create_disk_image(image, TINY, seed="assessment")
    reboots: list[str] = []
    backend = FileSlotBackend(image, tmp_path / "node", on_reboot=lambda: reboots.append("r"))
    return Node(backend, tmp_path / "agent" / "boot-assessment.json", FakeClock(), reboots)


def test_the_full_update_lifecycle_a_to_b_to_a(node: Node) -> None:
    assert node.backend.power_on().slot is Slot.A
    first = node.assess(HEALTHY).assess()
    assert (first.outcome, first.booted_slot, first.version) == (
        BootOutcome.ALREADY_GOOD,
        Slot.A,
        None,
    )

    assert node.install("2.0.0") is Slot.B
    assert node.reboot().slot is Slot.B
    assert node.table().slot(Slot.B).state is SlotState.BOOTABLE  # on trial
    good = node.assess(HEALTHY).assess()
    assert (good.outcome, good.booted_slot, good.version, good.previous_version) == (
        BootOutcome.FIRST_BOOT_GOOD,
        Slot.B,
        "2.0.0",
        None,  # the image's original content carries no version record
    )
    assert node.table().slot(Slot.B).prio == GptPrio(2, 0, True)
    # The agent restarts before it reported: the same boot gives the same report.
    assert node.assess(HEALTHY).assess() == good

    assert node.install("3.0.0") is Slot.A
    assert node.reboot().slot is Slot.A
    second = node.assess(HEALTHY).assess()
    assert (second.outcome, second.version, second.previous_version) == (
        BootOutcome.FIRST_BOOT_GOOD,
        "3.0.0",
        "2.0.0",
    )

    node.reboot()
    assert node.assess(HEALTHY).assess().outcome is BootOutcome.ALREADY_GOOD
    assert node.reboots == []  # the assessor itself never rebooted


def test_a_failing_health_check_rolls_back_to_a(node: Node) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    assert node.reboot().slot is Slot.B

    bad = node.assess(SICK).assess()
    assert bad.outcome is BootOutcome.MARKED_BAD_REBOOTING
    assert (bad.booted_slot, bad.failed_version) == (Slot.B, "2.0.0")
    assert bad.reasons == ("docker.service is failed",)
    assert node.reboots == ["r"] and node.backend.reboot_requested
    b = node.table().slot(Slot.B)
    assert (b.prio, b.record.phase) == (GptPrio(0, 0, False), ContentPhase.BAD)

    # The reboot did not happen (agent restarted first): asked for again, same report.
    assert node.assess(HEALTHY).assess() == bad
    assert node.reboots == ["r", "r"]

    assert node.backend.power_on().slot is Slot.A
    back = node.assess(HEALTHY).assess()
    assert (back.outcome, back.booted_slot, back.failed_version) == (
        BootOutcome.ROLLED_BACK_FROM,
        Slot.A,
        "2.0.0",
    )
    assert node.assess(HEALTHY).assess() == back  # same boot, same report

    node.reboot()
    assert node.assess(HEALTHY).assess().outcome is BootOutcome.ALREADY_GOOD  # reported once


def test_a_slot_that_used_up_its_tries_is_detected_as_a_rollback(node: Node) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    assert node.reboot().slot is Slot.B  # GRUB used B's only try ...
    # ... and B died before its assessment: power cut, gptprio falls back to A.
    assert node.backend.power_on().slot is Slot.A
    assert node.table().slot(Slot.B).state is SlotState.BAD

    report = node.assess(HEALTHY).assess()
    assert (report.outcome, report.booted_slot, report.failed_version) == (
        BootOutcome.ROLLED_BACK_FROM,
        Slot.A,
        "2.0.0",
    )
    assert "used up its boot tries" in report.reasons[0]
    b = node.table().slot(Slot.B)
    assert (b.prio, b.record.phase) == (GptPrio(0, 0, False), ContentPhase.BAD)

    assert node.reboot().slot is Slot.A
    assert node.assess(HEALTHY).assess().outcome is BootOutcome.ALREADY_GOOD


def test_an_update_waiting_for_its_reboot_is_not_a_rollback(node: Node, tmp_path: Path) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    # A fresh state file: the verdict must come from the slots, not from a remembered one.
    assessor = BootAssessor(
        node.backend, CHECK, tmp_path / "other-state.json", runner=FakeRunner(HEALTHY)
    )
    assert assessor.assess().outcome is BootOutcome.ALREADY_GOOD
    assert node.table().slot(Slot.B).prio == GptPrio(2, 1, False)  # still armed


def test_units_still_starting_are_waited_for_within_the_grace_period(node: Node) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    node.reboot()
    starting: dict[str, str | list[str]] = {"docker.service": ["inactive", "activating", "active"]}
    report = node.assess(starting).assess()
    assert report.outcome is BootOutcome.FIRST_BOOT_GOOD
    assert node.clock.sleeps == [5.0, 5.0]


def test_a_unit_that_never_comes_up_fails_the_boot_after_the_grace_period(node: Node) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    node.reboot()
    report = node.assess({"docker.service": "activating"}).assess()
    assert report.outcome is BootOutcome.MARKED_BAD_REBOOTING
    assert report.reasons == ("docker.service is activating",)
    assert sum(node.clock.sleeps) == CHECK.grace_period  # waited exactly the grace period


def test_an_unhealthy_slot_with_nothing_to_fall_back_to_is_kept_bootable(node: Node) -> None:
    node.backend.power_on()
    node.install("2.0.0")
    node.reboot()
    node.table().begin_write(Slot.A)  # A is being rewritten: not bootable
    report = node.assess(SICK).assess()
    assert report.outcome is BootOutcome.UNHEALTHY_NO_FALLBACK
    assert report.reasons == ("docker.service is failed",)
    # Marked good: with B out of tries and A empty, the next boot would find nothing.
    assert node.table().slot(Slot.B).prio == GptPrio(2, 0, True)
    assert node.reboots == []


def test_a_damaged_assessment_state_file_is_ignored(node: Node) -> None:
    node.backend.power_on()
    node.state_path.parent.mkdir(parents=True)
    node.state_path.write_text("{not json")
    assert node.assess(HEALTHY).assess().outcome is BootOutcome.ALREADY_GOOD


# ------------------------------------------------- with the block-device backend's ESP


@pytest.mark.parametrize("healthy", [True, False])
def test_the_systemd_boot_entry_is_blessed_or_removed(tmp_path: Path, healthy: bool) -> None:
    image = tmp_path / "disk.img"
    create_disk_image(image, TINY, seed="entries")
    proc, esp = tmp_path / "proc", tmp_path / "boot"
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text(os.urandom(16).hex() + "\n")
    (proc / "cmdline").write_text(f"console=ttyS0 mount.usr=PARTUUID={USR_A_UUID}\n")
    (esp / "EFI").mkdir(parents=True)
    commands: list[list[str]] = []

    def run(argv: Sequence[str]) -> str:
        commands.append(list(argv))
        return ""

    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var",
        disk=image,
        paths=HostPaths(proc=proc, esp_candidates=(esp,)),
        run=run,
    )
    table = backend.slot_table()
    table.begin_write(Slot.B)
    table.mark_written(Slot.B)
    table.mark_verified(Slot.B, "2.0.0", 4096, "ef" * 32)
    table.make_bootable(Slot.B)
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1)
    entries = esp / "loader" / "entries"
    # systemd-boot picks the entry, counts it down and boots slot B.
    os.replace(entries / "wellcar-b+1.conf", entries / "wellcar-b+0-1.conf")
    (proc / "cmdline").write_text(f"console=ttyS0 mount.usr=PARTUUID={USR_B_UUID}\n")
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text(os.urandom(16).hex() + "\n")

    assessor = BootAssessor(
        backend, CHECK, tmp_path / "var" / "assessment.json",
        runner=FakeRunner(HEALTHY if healthy else SICK),
        monotonic=FakeClock().monotonic, sleep=FakeClock().sleep,
    )  # fmt: skip
    report = assessor.assess()
    if healthy:
        assert report.outcome is BootOutcome.FIRST_BOOT_GOOD
        assert sorted(p.name for p in entries.iterdir()) == ["wellcar-b.conf"]
        assert commands == []
    else:
        assert report.outcome is BootOutcome.MARKED_BAD_REBOOTING
        assert list(entries.iterdir()) == []  # systemd-boot must not offer B again
        assert commands == [["systemctl", "reboot"]]
