"""DigitalOcean's metadata service: one JSON document, ``/metadata/v1.json``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import BadMetadataError
from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

PREFIX = "COREOS_DIGITALOCEAN_"


def _first(doc: dict[str, object], kind: str, family: str, key: str) -> str | None:
    interfaces = doc.get("interfaces")
    found = interfaces.get(kind) if isinstance(interfaces, dict) else None
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return None
    entry = found[0].get(family)
    value = entry.get(key) if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


class DigitalOceanProvider:
    name = "digitalocean"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(settings.base_url, policy=settings.policy)

    def metadata(self) -> Metadata:
        raw = self.client.get("metadata/v1.json")
        if raw is None:
            return Metadata(self.name)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise BadMetadataError("metadata/v1.json is not JSON") from None
        if not isinstance(doc, dict):
            raise BadMetadataError("metadata/v1.json is not a JSON object")
        attributes = {}
        for name, value in (
            ("HOSTNAME", doc.get("hostname")),
            ("REGION", doc.get("region")),
            ("IPV4_PUBLIC_0", _first(doc, "public", "ipv4", "ip_address")),
            ("IPV4_ANCHOR_0", _first(doc, "public", "anchor_ipv4", "ip_address")),
            ("IPV4_PRIVATE_0", _first(doc, "private", "ipv4", "ip_address")),
            ("IPV6_PUBLIC_0", _first(doc, "public", "ipv6", "ip_address")),
            ("IPV6_PRIVATE_0", _first(doc, "private", "ipv6", "ip_address")),
        ):
            if isinstance(value, str) and value:
                attributes[PREFIX + name] = value
        keys = doc.get("public_keys")
        ssh_keys = tuple(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else ()
        return Metadata(self.name, attributes.get(PREFIX + "HOSTNAME"), ssh_keys, attributes)

    def user_data(self) -> bytes | None:
        return self.client.get("metadata/v1/user-data")
