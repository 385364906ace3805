"""Ignition config spec 3.5.0, the newest spec Wellcar speaks and the one its typed config
(`wellcar.ignition.types`) models: adds IBM CEX keys for LUKS."""

from __future__ import annotations

from wellcar.ignition import v3_4
from wellcar.ignition.schema import BOOL, Ref, obj

VERSION = "3.5.0"

_base = v3_4.SPEC.definitions

SPEC = v3_4.SPEC.derive(
    VERSION,
    luks=_base["luks"].with_fields(cex=Ref("cex")),
    cex=obj(enabled=BOOL),
)
