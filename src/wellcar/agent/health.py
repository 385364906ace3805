"""Boot assessment: is the slot we booted into good, and what happens if it is not.

Flatcar marks a boot good when update_engine has run for 45 seconds. Here "good" means the
units the vendor or user named are active and an optional command succeeds:
:func:`assess_boot` gives a :class:`HealthVerdict` (good, bad with a reason per unit, or
pending while units may still be starting). :class:`BootAssessor` acts on it once per
boot: a slot on trial is marked good (and its boot entry blessed), or marked bad and the
machine rebooted into the other slot; it also notices that the machine came back on the
old slot because the new one used up its tries. The daemon reports the
:class:`BootReport` to the update server (3/2 after a good first boot, 3/0 errorcode 44
after a rollback).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import ContentPhase, Slot, SlotInfo, SlotStateError, SlotTable
from wellcar.logline import log_fields

from .slot_backend import SlotBackend

log = logging.getLogger(__name__)

DEFAULT_AGENT_UNIT = "wellcar-agent.service"
DEFAULT_REQUIRED_UNITS = ("containerd.service", "docker.service", DEFAULT_AGENT_UNIT)
_OUTPUT_TAIL = 2000  # characters of a failed command's output kept for the reason


# ------------------------------------------------------------------------------ errors


class HealthCheckError(Exception):
    """The health check configuration is unusable, or the assessment state file is."""


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class CommandCheck:
    """A command that must exit 0 within ``timeout`` seconds."""

    argv: tuple[str, ...]
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise HealthCheckError("the health check command is empty")
        if self.timeout <= 0:
            raise HealthCheckError(f"the health check timeout {self.timeout} is not positive")


@dataclass(frozen=True)
class HealthCheck:
    """What a good boot looks like.

    ``required_units`` must be active. Until ``grace_period`` seconds have passed since the
    assessment started, units that are not active yet (but have not failed) and a failing
    command only make the verdict *pending*; after it they make it bad. ``agent_unit`` is
    the agent's own unit: "activating" counts as running for it, because the agent is
    evidently running and may signal readiness only after this assessment.
    """

    required_units: tuple[str, ...] = DEFAULT_REQUIRED_UNITS
    command: CommandCheck | None = None
    grace_period: float = 120.0
    poll_interval: float = 5.0
    agent_unit: str | None = DEFAULT_AGENT_UNIT

    def __post_init__(self) -> None:
        if self.grace_period < 0 or self.poll_interval <= 0:
            raise HealthCheckError(
                f"grace period {self.grace_period} must be >= 0 and poll interval "
                f"{self.poll_interval} > 0"
            )


# --------------------------------------------------------------------------- runners


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None: it did not finish (timed out) or could not start
    timed_out: bool = False
    output: str = ""  # the tail of stdout and stderr together
    error: str | None = None  # why it could not start


class HealthRunner(Protocol):
    def unit_state(self, unit: str) -> str:
        """What ``systemctl is-active UNIT`` prints: active, activating, failed, ..."""
        ...

    def run(self, command: Sequence[str], timeout: float) -> CommandResult: ...


class SystemdRunner:
    """The real thing: ``systemctl is-active`` and subprocesses."""

    def __init__(self, systemctl: str = "systemctl") -> None:
        self._systemctl = systemctl

    def unit_state(self, unit: str) -> str:
        # is-active exits non-zero for every state but active; the state is on stdout.
        try:
            done = subprocess.run(
                [self._systemctl, "is-active", unit],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        return done.stdout.strip() or f"unknown ({done.stderr.strip() or 'no output'})"

    def run(self, command: Sequence[str], timeout: float) -> CommandResult:
        try:
            # A session of its own, so a timeout kills the command's children too (a shell
            # script's "sleep" would otherwise keep the output pipe open and us waiting).
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(None, error=exc.strerror or str(exc))
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return CommandResult(None, True, _tail(output))
        return CommandResult(process.returncode, False, _tail(output))


def _tail(output: bytes | None) -> str:
    return (output or b"").decode("utf-8", errors="replace")[-_OUTPUT_TAIL:].strip()


# --------------------------------------------------------------------------- verdict


class HealthStatus(StrEnum):
    GOOD = "good"
    BAD = "bad"
    PENDING = "pending"


@dataclass(frozen=True)
class UnitFinding:
    unit: str
    state: str
    status: HealthStatus


@dataclass(frozen=True)
class HealthVerdict:
    status: HealthStatus
    units: tuple[UnitFinding, ...] = ()
    command: CommandResult | None = None
    reasons: tuple[str, ...] = ()  # one line per unit or command that is not good


_RUNNING_STATES = frozenset({"active", "reloading", "refreshing"})
# Still on the way up, or not started yet: during boot a queued unit reads "inactive".
_MAYBE_LATER_STATES = frozenset({"activating", "inactive"})


def _unit_finding(unit: str, state: str, check: HealthCheck, in_grace: bool) -> UnitFinding:
    if state in _RUNNING_STATES or (unit == check.agent_unit and state == "activating"):
        return UnitFinding(unit, state, HealthStatus.GOOD)
    if state in _MAYBE_LATER_STATES and in_grace:
        return UnitFinding(unit, state, HealthStatus.PENDING)
    return UnitFinding(unit, state, HealthStatus.BAD)


def _command_reason(command: CommandCheck, result: CommandResult) -> str:
    name = " ".join(command.argv)
    if result.error is not None:
        return f"health command {name!r} could not run: {result.error}"
    if result.timed_out:
        return f"health command {name!r} did not finish within {command.timeout:g} s"
    detail = f": {result.output.splitlines()[-1]}" if result.output else ""
    return f"health command {name!r} exited with status {result.exit_code}{detail}"


def assess_boot(
    check: HealthCheck, runner: HealthRunner, *, elapsed: float = float("inf")
) -> HealthVerdict:
    """One look at the node. ``elapsed``: seconds since the assessment began (the default,
    infinity, is past any grace period: the verdict is then good or bad, never pending).

    A failed unit is bad at once, grace or not. The command runs only when every unit is
    good, as it usually probes what those units provide.
    """
    in_grace = elapsed < check.grace_period
    units = tuple(
        _unit_finding(unit, runner.unit_state(unit), check, in_grace)
        for unit in check.required_units
    )
    bad = [f"{u.unit} is {u.state}" for u in units if u.status is HealthStatus.BAD]
    if bad:
        return HealthVerdict(HealthStatus.BAD, units, None, tuple(bad))
    waiting = [f"{u.unit} is {u.state}" for u in units if u.status is HealthStatus.PENDING]
    if waiting:
        return HealthVerdict(HealthStatus.PENDING, units, None, tuple(waiting))
    if check.command is None:
        return HealthVerdict(HealthStatus.GOOD, units)
    result = runner.run(check.command.argv, check.command.timeout)
    if result.exit_code == 0:
        return HealthVerdict(HealthStatus.GOOD, units, result)
    status = HealthStatus.PENDING if in_grace else HealthStatus.BAD
    return HealthVerdict(status, units, result, (_command_reason(check.command, result),))


# ------------------------------------------------------------------------- assessor


class BootOutcome(StrEnum):
    FIRST_BOOT_GOOD = "first-boot-good"  # a slot on trial passed: report 3/2
    ROLLED_BACK_FROM = "rolled-back-from"  # back on the old slot, the new one failed: 3/0 ec 44
    ALREADY_GOOD = "already-good"  # nothing on trial, nothing failed: nothing to report
    MARKED_BAD_REBOOTING = "marked-bad-rebooting"  # the slot on trial failed: rebooting
    # The slot on trial failed but the other slot cannot boot: it is kept (marked good)
    # because a machine that boots nothing is worse than one running an unhealthy version.
    UNHEALTHY_NO_FALLBACK = "unhealthy-no-fallback"


@dataclass(frozen=True)
class BootReport:
    outcome: BootOutcome
    booted_slot: Slot
    version: str | None  # what the booted slot holds (None: the image's original content)
    previous_version: str | None = None  # FIRST_BOOT_GOOD: the version updated from
    failed_version: str | None = None  # ROLLED_BACK_FROM / MARKED_BAD_REBOOTING
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "booted_slot": self.booted_slot.value,
            "version": self.version,
            "previous_version": self.previous_version,
            "failed_version": self.failed_version,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, value: object) -> BootReport:
        if not isinstance(value, dict):
            raise ValueError("a boot report is a JSON object")
        reasons = value.get("reasons", [])
        return cls(
            BootOutcome(value["outcome"]),
            Slot(value["booted_slot"]),
            _optional_text(value.get("version")),
            _optional_text(value.get("previous_version")),
            _optional_text(value.get("failed_version")),
            tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
        )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass
class _AssessmentState:
    boot_id: str | None = None
    report: BootReport | None = None
    # "<slot>@<marked_bad_at>" of failed slots already reported, so a rollback is reported
    # once and not again on every later boot of the old slot.
    reported_failures: list[str] = field(default_factory=list)


_STATE_FORMAT = "wellcar-boot-assessment"
_REPORTED_FAILURES_KEPT = 16


def _failure_key(info: SlotInfo) -> str:
    stamp = info.record.marked_bad_at.isoformat() if info.record.marked_bad_at else "?"
    return f"{info.slot.value}@{stamp}"


class BootAssessor:
    """Decides, once per boot, what the boot means and acts on it.

    The result for a boot is kept in ``state_path`` under the backend's boot id, so an agent
    restarted within the same boot gets the same report again (a 3/2 not yet sent is not
    lost) without repeating the transitions.
    """

    def __init__(
        self,
        backend: SlotBackend,
        check: HealthCheck,
        state_path: Path,
        *,
        runner: HealthRunner | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._backend = backend
        self._check = check
        self._state_path = state_path
        self._runner = runner or SystemdRunner()
        self._monotonic = monotonic
        self._sleep = sleep

    # -- state file

    def _load_state(self) -> _AssessmentState:
        try:
            document = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _AssessmentState()
        except (OSError, ValueError) as exc:
            log.warning(
                "ignoring an unreadable state file",
                extra=log_fields(path=self._state_path, error=exc),
            )
            return _AssessmentState()
        try:
            if not isinstance(document, dict) or document.get("format") != _STATE_FORMAT:
                raise ValueError(f"not a {_STATE_FORMAT} file")
            report = document.get("report")
            failures = document.get("reported_failures", [])
            return _AssessmentState(
                _optional_text(document.get("boot_id")),
                BootReport.from_json(report) if report is not None else None,
                [str(f) for f in failures] if isinstance(failures, list) else [],
            )
        except (KeyError, ValueError) as exc:
            log.warning(
                "ignoring a malformed state file",
                extra=log_fields(path=self._state_path, error=exc),
            )
            return _AssessmentState()

    def _save_state(self, state: _AssessmentState) -> None:
        document = {
            "format": _STATE_FORMAT,
            "version": 1,
            "boot_id": state.boot_id,
            "report": state.report.to_json() if state.report else None,
            "reported_failures": state.reported_failures[-_REPORTED_FAILURES_KEPT:],
        }
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self._state_path, json.dumps(document, indent=2) + "\n")

    # -- assessment

    def wait_for_verdict(self) -> HealthVerdict:
        """Poll the health check until it is no longer pending (at most the grace period)."""
        started = self._monotonic()
        while True:
            verdict = assess_boot(self._check, self._runner, elapsed=self._monotonic() - started)
            if verdict.status is not HealthStatus.PENDING:
                return verdict
            log.info("boot health pending", extra=log_fields(reason="; ".join(verdict.reasons)))
            self._sleep(self._check.poll_interval)

    def assess(self) -> BootReport:
        # First of all: what the firmware recorded about this boot goes into the GPT bits.
        self._backend.reconcile()
        boot_id = self._backend.boot_id()
        state = self._load_state()
        if state.boot_id == boot_id and state.report is not None:
            if state.report.outcome is BootOutcome.MARKED_BAD_REBOOTING:
                self._backend.reboot()  # the reboot asked for earlier has not happened yet
            return state.report
        report = self._decide(state)
        if report.outcome is not BootOutcome.UNHEALTHY_NO_FALLBACK:
            # Kept per boot; an unhealthy slot without fallback is looked at again on the
            # next start, in case what was broken has recovered.
            state.boot_id, state.report = boot_id, report
        self._save_state(state)
        if report.outcome is BootOutcome.MARKED_BAD_REBOOTING:
            self._backend.reboot()
        return report

    def _decide(self, state: _AssessmentState) -> BootReport:
        table = self._backend.slot_table()
        booted = self._backend.booted_slot()
        running, other = table.slot(booted), table.slot(booted.other)
        if running.prio.priority == 0:
            # Marked bad in this boot (or by hand) and will not boot again: the other slot
            # does. Finish what marking it bad started.
            return BootReport(
                BootOutcome.MARKED_BAD_REBOOTING,
                booted,
                running.record.version,
                failed_version=running.record.version,
                reasons=("the running slot is marked bad; the other slot boots next",),
            )
        if not running.prio.successful:
            return self._judge_trial(table, running, other)
        self._backend.bless_boot_entry(booted)  # idempotent: a crash may have come between
        return self._look_for_failed_update(table, state, running, other)

    def _judge_trial(self, table: SlotTable, running: SlotInfo, other: SlotInfo) -> BootReport:
        verdict = self.wait_for_verdict()
        slot = running.slot
        if verdict.status is HealthStatus.GOOD:
            table.mark_good(slot)
            self._backend.bless_boot_entry(slot)
            log.info("slot is good", extra=log_fields(slot=slot, version=running.record.version))
            return BootReport(
                BootOutcome.FIRST_BOOT_GOOD,
                slot,
                running.record.version,
                previous_version=other.record.version,
            )
        try:
            table.mark_bad(slot)
        except SlotStateError as exc:
            log.error(
                "slot is unhealthy but there is nothing to go back to",
                extra=log_fields(slot=slot, error=exc),
            )
            table.mark_good(slot)
            self._backend.bless_boot_entry(slot)
            return BootReport(
                BootOutcome.UNHEALTHY_NO_FALLBACK,
                slot,
                running.record.version,
                previous_version=other.record.version,
                reasons=verdict.reasons,
            )
        self._backend.remove_boot_entry(slot)
        log.error(
            "slot is unhealthy: rolling back",
            extra=log_fields(slot=slot, reason="; ".join(verdict.reasons)),
        )
        return BootReport(
            BootOutcome.MARKED_BAD_REBOOTING,
            slot,
            running.record.version,
            failed_version=running.record.version,
            reasons=verdict.reasons,
        )

    def _look_for_failed_update(
        self, table: SlotTable, state: _AssessmentState, running: SlotInfo, other: SlotInfo
    ) -> BootReport:
        reasons: tuple[str, ...] = ()
        if other.prio.priority > 0 and not other.prio.successful and other.prio.tries == 0:
            # Made bootable, booted (gptprio used its try) but never marked good, and gptprio
            # fell back to us: the new slot died before passing its health check.
            reasons = (f"slot {other.slot} used up its boot tries without being marked good",)
            other = table.mark_bad(other.slot)
            self._backend.remove_boot_entry(other.slot)
        if other.record.phase is ContentPhase.BAD:
            key = _failure_key(other)
            if key not in state.reported_failures:
                state.reported_failures.append(key)
                log.warning(
                    "rolled back",
                    extra=log_fields(slot=other.slot, version=other.record.version),
                )
                return BootReport(
                    BootOutcome.ROLLED_BACK_FROM,
                    running.slot,
                    running.record.version,
                    failed_version=other.record.version,
                    reasons=reasons or (f"slot {other.slot} was marked bad",),
                )
        return BootReport(BootOutcome.ALREADY_GOOD, running.slot, running.record.version)
