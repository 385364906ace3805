"""The state machine, the persisted status and crash recovery."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wellcar.agent.errors import InvalidTransition, StateError
from wellcar.agent.state import (
    BUSY_STATES,
    TRANSITIONS,
    Trigger,
    UpdateState,
    allowed_triggers,
    next_state,
)
from wellcar.agent.status_store import (
    AgentStatus,
    StatusStore,
    decode_status,
    encode_status,
    recover,
)

S, T = UpdateState, Trigger

EXPECTED = {
    (S.IDLE, T.CHECK): S.CHECKING_FOR_UPDATE,
    (S.IDLE, T.RESET): S.IDLE,
    (S.CHECKING_FOR_UPDATE, T.NO_UPDATE): S.IDLE,
    (S.CHECKING_FOR_UPDATE, T.CHECK_FAILED): S.IDLE,
    (S.CHECKING_FOR_UPDATE, T.UPDATE_FOUND): S.UPDATE_AVAILABLE,
    (S.CHECKING_FOR_UPDATE, T.FAILED): S.REPORTING_ERROR_EVENT,
    (S.UPDATE_AVAILABLE, T.DOWNLOAD_STARTED): S.DOWNLOADING,
    (S.UPDATE_AVAILABLE, T.FAILED): S.REPORTING_ERROR_EVENT,
    (S.DOWNLOADING, T.DOWNLOAD_FINISHED): S.VERIFYING,
    (S.DOWNLOADING, T.FAILED): S.REPORTING_ERROR_EVENT,
    (S.VERIFYING, T.VERIFIED): S.FINALIZING,
    (S.VERIFYING, T.FAILED): S.REPORTING_ERROR_EVENT,
    (S.FINALIZING, T.INSTALLED): S.UPDATED_NEED_REBOOT,
    (S.FINALIZING, T.FAILED): S.REPORTING_ERROR_EVENT,
    (S.UPDATED_NEED_REBOOT, T.REBOOTED): S.IDLE,
    (S.UPDATED_NEED_REBOOT, T.RESET): S.IDLE,
    (S.REPORTING_ERROR_EVENT, T.ERROR_REPORTED): S.IDLE,
}
ALL_PAIRS = [(s, t) for s in UpdateState for t in Trigger]


def test_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("state", "trigger"), ALL_PAIRS)
def test_every_pair(state: UpdateState, trigger: Trigger) -> None:
    if (state, trigger) in EXPECTED:
        assert next_state(state, trigger) is EXPECTED[(state, trigger)]
        assert trigger in allowed_triggers(state)
    else:
        with pytest.raises(InvalidTransition) as info:
            next_state(state, trigger)
        assert info.value.state == str(state) and info.value.trigger == str(trigger)
        assert isinstance(info.value, StateError)
        assert trigger not in allowed_triggers(state)


def test_transitions_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[(S.IDLE, T.INSTALLED)] = S.UPDATED_NEED_REBOOT  # type: ignore[index]


def test_states_print_and_number_like_update_engine() -> None:
    assert str(S.IDLE) == "UPDATE_STATUS_IDLE"
    assert f"{S.UPDATED_NEED_REBOOT}" == "UPDATE_STATUS_UPDATED_NEED_REBOOT"
    assert [s.code for s in UpdateState] == list(range(8))
    assert S.REPORTING_ERROR_EVENT.code == 7 and S.VERIFYING.code == 4
    assert UpdateState("UPDATE_STATUS_DOWNLOADING") is S.DOWNLOADING


def test_every_busy_state_can_fail() -> None:
    assert {s for s in UpdateState if T.FAILED in allowed_triggers(s)} == BUSY_STATES
    assert S.IDLE not in BUSY_STATES and S.UPDATED_NEED_REBOOT not in BUSY_STATES


# --- AgentStatus ------------------------------------------------------------------------

BOOT_1 = "11111111-1111-4111-8111-111111111111"
BOOT_2 = "22222222-2222-4222-8222-222222222222"
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Offer:
    version: str = "4459.2.2"
    urls: tuple[str, ...] = ("http://127.0.0.1:1/p/wellcar_update.gz",)
    size: int = 1000
    sha256_b64: str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="


def run_to_need_reboot(status: AgentStatus) -> AgentStatus:
    status = status.advance(T.CHECK).with_offer(Offer())
    status = status.advance(T.DOWNLOAD_STARTED, update_attempts=status.update_attempts + 1)
    status = status.advance(T.DOWNLOAD_FINISHED, downloaded_bytes=1000)
    status = status.advance(T.VERIFIED)
    return status.advance(T.INSTALLED, install_boot_id=BOOT_1)


def test_happy_path_bookkeeping() -> None:
    status = AgentStatus(current_version="4459.2.1", has_checked_in=True)
    status = run_to_need_reboot(status)
    assert status.state is S.UPDATED_NEED_REBOOT
    assert status.new_version == "4459.2.2"
    assert status.new_payload_urls == Offer.urls
    assert status.new_payload_size == 1000
    assert status.new_payload_sha256 == Offer.sha256_b64
    assert status.previous_version == "4459.2.1"  # set when entering FINALIZING
    assert status.install_boot_id == BOOT_1
    assert status.update_attempts == 1


def test_installed_requires_the_boot_id() -> None:
    status = AgentStatus(state=S.FINALIZING, current_version="1.0.0")
    with pytest.raises(StateError, match="install_boot_id"):
        status.advance(T.INSTALLED)


def test_advance_refuses_invalid_transitions() -> None:
    with pytest.raises(InvalidTransition):
        AgentStatus().advance(T.INSTALLED, install_boot_id=BOOT_1)


def test_same_offer_keeps_progress_a_new_one_resets_it() -> None:
    status = AgentStatus(current_version="1.0.0").advance(T.CHECK).with_offer(Offer())
    status = status.advance(T.DOWNLOAD_STARTED, update_attempts=1, downloaded_bytes=400)
    status = recover(status, boot_id=BOOT_1, running_version="1.0.0")
    again = status.advance(T.CHECK).with_offer(Offer())
    assert (again.downloaded_bytes, again.update_attempts) == (400, 1)
    other = status.advance(T.CHECK).with_offer(Offer(version="4459.2.3", sha256_b64="AAAA"))
    assert (other.downloaded_bytes, other.update_attempts) == (0, 0)


def test_failure_is_recorded_and_cleared_by_report() -> None:
    status = AgentStatus(state=S.DOWNLOADING).failed(10, "hash mismatch")
    assert status.state is S.REPORTING_ERROR_EVENT
    assert (status.last_error_code, status.last_error_message) == (10, "hash mismatch")
    assert status.advance(T.ERROR_REPORTED).state is S.IDLE


def test_failure_while_finalizing_forgets_the_previous_version() -> None:
    status = AgentStatus(state=S.VERIFYING, current_version="1.0.0").advance(T.VERIFIED)
    assert status.previous_version == "1.0.0"
    assert status.failed(28, "apply failed").previous_version is None


def test_reset_forgets_the_pending_update() -> None:
    status = run_to_need_reboot(AgentStatus(current_version="4459.2.1"))
    status = status.advance(T.RESET)
    assert status.state is S.IDLE
    assert status.new_version is None and status.previous_version is None
    assert status.install_boot_id is None and status.new_payload_urls == ()


def test_checked_in_clears_one_shot_reports() -> None:
    status = AgentStatus(previous_version="1.0.0", consecutive_check_failures=3)
    status = status.checked_in(NOW)
    assert status.has_checked_in and status.previous_version is None
    assert status.last_check_time == NOW and status.consecutive_check_failures == 0


# --- recovery -------------------------------------------------------------------------------

INFLIGHT = dict(
    current_version="1.0.0",
    new_version="2.0.0",
    new_payload_urls=("http://127.0.0.1:1/p",),
    new_payload_size=1000,
    new_payload_sha256="abc=",
    downloaded_bytes=500,
)


@pytest.mark.parametrize(
    "state", [S.IDLE, S.CHECKING_FOR_UPDATE, S.UPDATE_AVAILABLE, S.REPORTING_ERROR_EVENT]
)
def test_recover_simple_states_to_idle(state: UpdateState) -> None:
    status = AgentStatus(state=state, last_error_code=9, **INFLIGHT)  # type: ignore[arg-type]
    out = recover(status, boot_id=BOOT_1, running_version="1.0.0")
    assert out.state is S.IDLE
    assert out.last_error_code == 9  # kept for status output


@pytest.mark.parametrize("state", [S.DOWNLOADING, S.VERIFYING])
def test_recover_download_keeps_partial_for_resume(state: UpdateState) -> None:
    status = AgentStatus(state=state, **INFLIGHT)  # type: ignore[arg-type]
    out = recover(status, boot_id=BOOT_1, running_version="1.0.0")
    assert out.state is S.IDLE
    assert out.downloaded_bytes == 500 and out.new_payload_sha256 == "abc="
    assert out.new_version == "2.0.0"


def test_recover_finalizing_must_reinstall() -> None:
    status = AgentStatus(state=S.FINALIZING, previous_version="1.0.0", **INFLIGHT)  # type: ignore[arg-type]
    out = recover(status, boot_id=BOOT_1, running_version="1.0.0")
    assert out.state is S.IDLE
    assert out.previous_version is None  # no false rollback report
    assert out.new_version is None and out.downloaded_bytes == 0


def test_recover_finalizing_after_the_flip_and_a_power_cut() -> None:
    # The install had made the new slot bootable; the power cut rebooted into it.
    status = AgentStatus(state=S.FINALIZING, previous_version="1.0.0", **INFLIGHT)  # type: ignore[arg-type]
    out = recover(status, boot_id=BOOT_2, running_version="2.0.0")
    assert out.state is S.IDLE
    assert out.previous_version == "1.0.0"  # next check reports 3/2 previousversion=1.0.0
    assert out.current_version == "2.0.0"


def test_recover_need_reboot_same_boot_stays() -> None:
    status = run_to_need_reboot(AgentStatus(current_version="4459.2.1"))
    out = recover(status, boot_id=BOOT_1, running_version="4459.2.1")
    assert out == replace(status, aleph_version="4459.2.1")


def test_recover_need_reboot_after_reboot_into_new_version() -> None:
    status = run_to_need_reboot(AgentStatus(current_version="4459.2.1"))
    out = recover(status, boot_id=BOOT_2, running_version="4459.2.2")
    assert out.state is S.IDLE
    assert out.current_version == "4459.2.2"
    assert out.previous_version == "4459.2.1"
    assert out.rolled_back_version is None
    assert out.install_boot_id is None and out.new_version is None


def test_recover_need_reboot_after_rollback() -> None:
    status = run_to_need_reboot(AgentStatus(current_version="4459.2.1"))
    out = recover(status, boot_id=BOOT_2, running_version="4459.2.1")
    assert out.state is S.IDLE
    assert out.previous_version == "4459.2.1"  # == running: next check sends 3/0 errorcode 44
    assert out.rolled_back_version == "4459.2.2"


def test_recover_sets_aleph_once() -> None:
    out = recover(AgentStatus(), boot_id=BOOT_1, running_version="1.0.0")
    assert out.aleph_version == "1.0.0"
    out = recover(out, boot_id=BOOT_2, running_version="2.0.0")
    assert out.aleph_version == "1.0.0" and out.current_version == "2.0.0"


@pytest.mark.parametrize("state", list(UpdateState))
def test_recover_always_lands_in_a_resting_state(state: UpdateState) -> None:
    status = AgentStatus(state=state, install_boot_id=BOOT_1, **INFLIGHT)  # type: ignore[arg-type]
    for boot, running in ((BOOT_1, "1.0.0"), (BOOT_2, "1.0.0"), (BOOT_2, "2.0.0")):
        out = recover(status, boot_id=boot, running_version=running)
        assert out.state in (S.IDLE, S.UPDATED_NEED_REBOOT)
        assert recover(out, boot_id=boot, running_version=running) == out  # idempotent


# --- persistence ---------------------------------------------------------------------------


def full_status() -> AgentStatus:
    return AgentStatus(
        state=S.DOWNLOADING,
        last_check_time=NOW,
        last_error_code=268435490,
        last_error_message="throttled ✓",
        previous_version="0.9.0",
        aleph_version="0.1.0",
        has_checked_in=True,
        update_attempts=2,
        consecutive_check_failures=1,
        install_boot_id=BOOT_1,
        rolled_back_version="1.5.0",
        **INFLIGHT,  # type: ignore[arg-type]
    )


def test_round_trip(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "state" / "status.json")
    assert store.load() == AgentStatus() and store.warnings == []
    status = full_status()
    store.save(status)
    assert StatusStore(store.path).load() == status
    assert os.listdir(store.path.parent) == ["status.json"]  # no temp files left
    doc = json.loads(store.path.read_text())
    assert doc["state"] == "UPDATE_STATUS_DOWNLOADING" and doc["schema"] == 1


def test_save_replaces_atomically(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "status.json")
    store.save(AgentStatus(current_version="1.0.0"))
    inode = store.path.stat().st_ino
    store.save(AgentStatus(current_version="2.0.0"))
    assert store.path.stat().st_ino != inode  # a new file renamed over, not rewritten in place
    assert store.load().current_version == "2.0.0"


def test_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StatusStore(tmp_path / "status.json")
    store.save(AgentStatus(current_version="1.0.0"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("wellcar.atomic_file.os.replace", broken_replace)
    with pytest.raises(OSError):
        store.save(AgentStatus(current_version="2.0.0"))
    monkeypatch.undo()
    assert store.load().current_version == "1.0.0"
    assert os.listdir(tmp_path) == ["status.json"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        encode_status(AgentStatus(state=S.DOWNLOADING)).encode()[:40],  # torn
        b"\x00" * 100,
        b"[1, 2]",
        b"null",
        b"\xff\xfe garbage",
        b"[" * 100_000,
    ],
)
def test_corrupt_file_gives_fresh_status_with_warning(tmp_path: Path, content: bytes) -> None:
    store = StatusStore(tmp_path / "status.json")
    store.path.write_bytes(content)
    assert store.load() == AgentStatus()
    assert store.warnings and str(store.path) in store.warnings[0]


def test_huge_file_is_not_read(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "status.json")
    store.path.write_bytes(b" " * (2 * 1024 * 1024))
    assert store.load() == AgentStatus()
    assert "larger than" in store.warnings[0]


def test_bad_fields_fall_back_one_by_one() -> None:
    doc = json.loads(encode_status(full_status()))
    doc.update(
        state="UPDATE_STATUS_PARTYING",
        downloaded_bytes=-1,
        update_attempts=True,
        has_checked_in="yes",
        last_check_time="yesterday",
        new_payload_urls=[1, 2],
        future_field={"x": 1},
    )
    status, warnings = decode_status(json.dumps(doc))
    fresh = AgentStatus()
    assert status.state is fresh.state
    assert status.downloaded_bytes == 0 and status.update_attempts == 0
    assert status.has_checked_in is False and status.last_check_time is None
    assert status.new_payload_urls == ()
    assert status.aleph_version == "0.1.0"  # good fields survive
    assert status.previous_version == "0.9.0"
    bad = {
        "state",
        "downloaded_bytes",
        "update_attempts",
        "has_checked_in",
        "last_check_time",
        "new_payload_urls",
    }
    assert {w.split("field ")[1].split()[0] for w in warnings} == bad


def test_other_schema_is_read_with_a_warning() -> None:
    doc = json.loads(encode_status(replace(full_status(), state=S.IDLE)))
    doc["schema"] = 99
    status, warnings = decode_status(json.dumps(doc))
    assert status.aleph_version == "0.1.0"
    assert any("schema 99" in w for w in warnings)
