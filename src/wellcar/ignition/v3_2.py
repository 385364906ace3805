"""Ignition config spec 3.2.0: LUKS volumes, partition resize, shouldExist for users and
groups."""

from __future__ import annotations

from typing import Any

from wellcar.ignition import v3_0, v3_1
from wellcar.ignition.schema import BOOL, INT, STRING, STRINGS, ListOf, Ref, obj

VERSION = "3.2.0"

_base = v3_1.SPEC.definitions

SPEC = v3_1.SPEC.derive(
    VERSION,
    storage=_base["storage"].with_fields(luks=ListOf(Ref("luks"))),
    luks=obj(
        ("name",),
        name=STRING,
        label=STRING,
        uuid=STRING,
        device=STRING,
        keyFile=Ref("resource"),
        wipeVolume=BOOL,
        clevis=Ref("clevis"),
        options=STRINGS,
    ),
    clevis=obj(custom=Ref("clevisCustom"), tpm2=BOOL, tang=ListOf(Ref("tang")), threshold=INT),
    clevisCustom=obj(pin=STRING, config=STRING, needsNetwork=BOOL),
    tang=obj(url=STRING, thumbprint=STRING),
    partition=_base["partition"].with_fields(resize=BOOL),
    user=_base["user"].with_fields(shouldExist=BOOL),
    group=_base["group"].with_fields(shouldExist=BOOL),
)


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """3.2.0 -> 3.3.0: only additions."""
    return v3_0.with_version(document, "3.3.0")
