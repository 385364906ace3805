"""Ignition config spec 3.1.0: resources gain compression and HTTP headers; proxies;
filesystem mount options."""

from __future__ import annotations

from typing import Any

from wellcar.ignition import v3_0
from wellcar.ignition.schema import STRING, STRINGS, ListOf, Ref, obj

VERSION = "3.1.0"

_base = v3_0.SPEC.definitions
_resource = obj(
    source=STRING,
    compression=STRING,
    httpHeaders=ListOf(Ref("httpHeader")),
    verification=Ref("verification"),
)

SPEC = v3_0.SPEC.derive(
    VERSION,
    resource=_resource,
    httpHeader=obj(("name",), name=STRING, value=STRING),
    ignition=_base["ignition"].with_fields(proxy=Ref("proxy")),
    proxy=obj(httpProxy=STRING, httpsProxy=STRING, noProxy=STRINGS),
    ignitionConfig=obj(merge=ListOf(Ref("resource")), replace=Ref("resource")),
    tls=obj(certificateAuthorities=ListOf(Ref("resource"))),
    file=_base["file"].with_fields(contents=Ref("resource"), append=ListOf(Ref("resource"))),
    filesystem=_base["filesystem"].with_fields(mountOptions=STRINGS),
)


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """3.1.0 -> 3.2.0: only additions."""
    return v3_0.with_version(document, "3.2.0")
