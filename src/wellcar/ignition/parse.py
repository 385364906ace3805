"""Bytes -> typed config: JSON decoding, version dispatch, structural check in the config's
own spec, the translate chain up to 3.5.0, then the semantic checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wellcar.ignition import v1, v2_x, v3_0, v3_1, v3_2, v3_3, v3_4, v3_5
from wellcar.ignition.codec import decode_config
from wellcar.ignition.errors import ConfigInvalidError, UnsupportedVersionError
from wellcar.ignition.report import Report
from wellcar.ignition.schema import Spec
from wellcar.ignition.types import Config
from wellcar.ignition.validate import validate

LATEST = v3_5.VERSION

Translate = Callable[[dict[str, Any]], dict[str, Any]]

# Each spec with its step to the next one; the last has none.
V3_CHAIN: tuple[tuple[Spec, Translate | None], ...] = (
    (v3_0.SPEC, v3_0.translate),
    (v3_1.SPEC, v3_1.translate),
    (v3_2.SPEC, v3_2.translate),
    (v3_3.SPEC, v3_3.translate),
    (v3_4.SPEC, v3_4.translate),
    (v3_5.SPEC, None),
)
SUPPORTED_VERSIONS = (*v2_x.VERSIONS, *(spec.version for spec, _ in V3_CHAIN))
SPEC_1 = "1"  # `"ignitionVersion": 1`: no `ignition.version` at all


@dataclass(frozen=True)
class ParsedConfig:
    config: Config
    report: Report  # warnings (errors raise)
    source_version: str


def load_json(data: bytes, origin: str) -> dict[str, Any]:
    report = Report()
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        report.error("$", "is not UTF-8 text")
        raise ConfigInvalidError(report, origin) from None
    except json.JSONDecodeError as exc:
        report.error("$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        raise ConfigInvalidError(report, origin) from None
    if not isinstance(document, dict):
        report.error("$", "a config must be a JSON object")
        raise ConfigInvalidError(report, origin)
    return document


def _version_of(document: dict[str, Any], origin: str) -> str:
    report = Report()
    ignition = document.get("ignition")
    version = ignition.get("version") if isinstance(ignition, dict) else None
    if v1.is_spec_1(document):
        if document["ignitionVersion"] == v1.VERSION:
            return SPEC_1
        report.error("$.ignitionVersion", f"must be {v1.VERSION} (spec 1), or use ignition.version")
    elif not isinstance(version, str):
        report.error("$.ignition.version", 'is required (e.g. "3.4.0")')
    elif version not in SUPPORTED_VERSIONS:
        hint = (
            "experimental specs are not accepted"
            if "experimental" in version
            else (f"supported: {', '.join(SUPPORTED_VERSIONS)}")
        )
        report.error("$.ignition.version", f"unknown version {version!r}; {hint}")
    else:
        return version
    raise UnsupportedVersionError(report, origin)


def to_latest_document(document: dict[str, Any], origin: str, report: Report) -> dict[str, Any]:
    """Check document in its own spec and translate it step by step to the latest."""
    version = _version_of(document, origin)
    if version == SPEC_1:
        v1.SPEC.check(document, report)
        if report.has_errors:
            raise ConfigInvalidError(report, origin)
        document = v1.translate(document)
        version = v1.TRANSLATED_VERSION
    from_v2 = version in v2_x.VERSIONS
    if from_v2:
        v2_x.SPEC.check(document, report)
        if report.has_errors:
            raise ConfigInvalidError(report, origin)
        document = v2_x.translate(document, report)
        if report.has_errors:
            raise ConfigInvalidError(report, origin)
        version = v3_1.VERSION
    start = next(i for i, (spec, _) in enumerate(V3_CHAIN) if spec.version == version)
    if not from_v2:
        V3_CHAIN[start][0].check(document, report)
        if report.has_errors:
            raise ConfigInvalidError(report, origin)
    for _spec, step in V3_CHAIN[start:]:
        if step is not None:
            document = step(document)
    return document


def parse_config(data: bytes, origin: str = "config") -> ParsedConfig:
    """Parse and validate; raises ConfigInvalidError (with every error) on a bad config."""
    document = load_json(data, origin)
    report = Report()
    source_version = _version_of(document, origin)
    latest = to_latest_document(document, origin, report)
    config = decode_config(latest)
    validate(config, report)
    if report.has_errors:
        raise ConfigInvalidError(report, origin)
    return ParsedConfig(config, report, source_version)


def check_config(data: bytes, origin: str = "config") -> Report:
    """The full report for data, errors included, without raising (for `config validate`)."""
    try:
        return parse_config(data, origin).report
    except ConfigInvalidError as exc:
        return exc.report
