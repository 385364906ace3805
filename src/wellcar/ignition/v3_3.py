"""Ignition config spec 3.3.0: kernel arguments; RAID level becomes optional (for
re-using an existing array)."""

from __future__ import annotations

from typing import Any

from wellcar.ignition import v3_0, v3_2
from wellcar.ignition.schema import STRINGS, Ref, obj

VERSION = "3.3.0"

_base = v3_2.SPEC.definitions

SPEC = v3_2.SPEC.derive(
    VERSION,
    config=_base["config"].with_fields(kernelArguments=Ref("kernelArguments")),
    kernelArguments=obj(shouldExist=STRINGS, shouldNotExist=STRINGS),
    raid=_base["raid"].not_requiring("level", "devices"),
)


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """3.3.0 -> 3.4.0: only additions."""
    return v3_0.with_version(document, "3.4.0")
