"""Protocol constants, error-code splitting, and the error classes' contract."""

from __future__ import annotations

import pickle

import pytest

from wellcar.omaha import (
    AppStatus,
    ErrorCode,
    ErrorFlag,
    EventResult,
    EventType,
    OmahaError,
    OmahaParseError,
    Reason,
    SchemaError,
    UpdateStatus,
    parse_request,
    split_error_code,
)


def test_event_and_result_values() -> None:
    assert (EventType.UPDATE_COMPLETE, EventType.DOWNLOAD_STARTED) == (3, 13)
    assert (EventType.DOWNLOAD_FINISHED, EventType.UPDATE_INSTALLED) == (14, 800)
    assert (EventResult.ERROR, EventResult.SUCCESS, EventResult.SUCCESS_REBOOT) == (0, 1, 2)
    assert EventResult.UPDATE_DEFERRED.value == 9


def test_error_code_values_match_update_engine() -> None:
    assert ErrorCode.PAYLOAD_HASH_MISMATCH.value == 10
    assert ErrorCode.PAYLOAD_SIZE_MISMATCH.value == 11
    assert ErrorCode.SIGNATURE_VERIFICATION_FAILED.value == 18
    assert ErrorCode.BAD_MAGIC.value == 21
    assert ErrorCode.OMAHA_RESPONSE_INVALID.value == 34
    assert ErrorCode.DEFERRED_FOR_BACKOFF.value == 40
    assert ErrorCode.ROLLBACK.value == 44
    assert ErrorCode.OMAHA_REQUEST_HTTP_RESPONSE_BASE.value == 2000
    assert ErrorFlag.DEV_MODE == 1 << 31
    assert ErrorFlag.RESUMED == 1 << 30
    assert ErrorFlag.TEST_IMAGE == 1 << 29
    assert ErrorFlag.TEST_OMAHA_URL == 1 << 28


@pytest.mark.parametrize(
    ("errorcode", "code", "flags", "http", "text"),
    [
        (0, 0, ErrorFlag.NONE, None, "SUCCESS (0)"),
        (10, 10, ErrorFlag.NONE, None, "PAYLOAD_HASH_MISMATCH (10)"),
        (
            268435490,  # nebraska#371
            34,
            ErrorFlag.TEST_OMAHA_URL,
            None,
            "OMAHA_RESPONSE_INVALID (34) + TEST_OMAHA_URL",
        ),
        (
            (1 << 30) | (1 << 29) | 44,
            44,
            ErrorFlag.RESUMED | ErrorFlag.TEST_IMAGE,
            None,
            "ROLLBACK (44) + TEST_IMAGE + RESUMED",
        ),
        (-2147483614, 34, ErrorFlag.DEV_MODE, None, "OMAHA_RESPONSE_INVALID (34) + DEV_MODE"),
        ((1 << 31) + 34, 34, ErrorFlag.DEV_MODE, None, "OMAHA_RESPONSE_INVALID (34) + DEV_MODE"),
        (2503, 2503, ErrorFlag.NONE, 503, "HTTP 503"),
        (2000 + 404 + (1 << 28), 2404, ErrorFlag.TEST_OMAHA_URL, 404, "HTTP 404 + TEST_OMAHA_URL"),
        (777, 777, ErrorFlag.NONE, None, "unknown (777)"),
    ],
)
def test_split_error_code(
    errorcode: int, code: int, flags: ErrorFlag, http: int | None, text: str
) -> None:
    split = split_error_code(errorcode)
    assert split.code == code
    assert split.flags == flags
    assert split.http_status == http
    assert split.describe() == text


def test_known_codes_keep_their_names() -> None:
    assert isinstance(split_error_code(268435490).code, ErrorCode)
    assert not isinstance(split_error_code(777).code, ErrorCode)


def test_nebraska_status_strings() -> None:
    assert {s.value for s in AppStatus} == {
        "ok",
        "error-unknownApplication",
        "error-unknownApplicationOrGroup",
        "error-noPackageFound",
        "error-instanceRegistrationFailed",
        "error-maxUpdatesPerPeriodLimitReached",
        "error-maxConcurrentUpdatesLimitReached",
        "error-maxTimedOutUpdatesLimitReached",
        "error-updatesDisabled",
        "error-couldNotCheckUpdatesStats",
        "error-updateInProgressOnInstance",
        "error-failedToRetrieveUpdatePackageInfo",
    }
    assert [s.value for s in UpdateStatus] == ["ok", "noupdate", "error-internal"]


def test_parse_errors_are_omaha_errors_with_string_reasons_and_pickle() -> None:
    with pytest.raises(OmahaError) as exc:
        parse_request(b'<request protocol="3.0"><app/></request>')
    err = exc.value
    assert isinstance(err, SchemaError) and isinstance(err, OmahaParseError)
    assert err.reason is Reason.MISSING_ATTRIBUTE
    assert isinstance(err.reason, str) and str(err.reason) == "missing-attribute"
    assert err.http_status == 400
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is SchemaError
    assert (clone.reason, clone.element, clone.attribute) == (err.reason, "app", "appid")
    assert str(clone) == str(err) == "<app> has no 'appid' attribute"
