"""Hetzner Cloud's metadata service: one value per path under ``/hetzner/v1/metadata``
(the whole document is YAML, which the node's python3 cannot read without PyYAML)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

ROOT = "hetzner/v1"
PREFIX = "COREOS_HETZNER_"
ATTRIBUTES = {
    "HOSTNAME": "metadata/hostname",
    "INSTANCE_ID": "metadata/instance-id",
    "PUBLIC_IPV4": "metadata/public-ipv4",
    "AVAILABILITY_ZONE": "metadata/availability-zone",
    "REGION": "metadata/region",
}


class HetznerProvider:
    name = "hetzner"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(f"{settings.base_url}/{ROOT}", policy=settings.policy)

    def metadata(self) -> Metadata:
        attributes = {}
        for name, path in ATTRIBUTES.items():
            value = self.client.text(path)
            if value:
                attributes[PREFIX + name] = value
        try:
            keys = json.loads(self.client.text("metadata/public-keys") or "[]")
        except ValueError:
            keys = []
        ssh_keys = tuple(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else ()
        return Metadata(self.name, attributes.get(PREFIX + "HOSTNAME"), ssh_keys, attributes)

    def user_data(self) -> bytes | None:
        return self.client.get("userdata")
