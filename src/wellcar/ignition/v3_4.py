"""Ignition config spec 3.4.0 (what Butane `flatcar` 1.1.0 emits): LUKS discard and open
options, Tang advertisements, optional link targets, `arn:` sources."""

from __future__ import annotations

from typing import Any

from wellcar.ignition import v3_0, v3_3
from wellcar.ignition.schema import BOOL, STRING, STRINGS

VERSION = "3.4.0"

_base = v3_3.SPEC.definitions

SPEC = v3_3.SPEC.derive(
    VERSION,
    luks=_base["luks"].with_fields(discard=BOOL, openOptions=STRINGS),
    tang=_base["tang"].with_fields(advertisement=STRING),
    link=_base["link"].not_requiring("target"),
)


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """3.4.0 -> 3.5.0: only additions."""
    return v3_0.with_version(document, "3.5.0")
