"""Microsoft Azure's instance metadata service (IMDS, ``Metadata: true``). The
provisioning report to the wireserver that marks the VM ready is not done yet
(docs/platforms.md)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

from ..errors import BadMetadataError
from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

INSTANCE = "metadata/instance?api-version=2021-02-01"
USER_DATA = "metadata/instance/compute/userData?api-version=2021-01-01&format=text"
PREFIX = "COREOS_AZURE_"


class AzureProvider:
    name = "azure"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(settings.base_url, headers={"Metadata": "true"},
                                     policy=settings.policy)  # fmt: skip

    def metadata(self) -> Metadata:
        raw = self.client.get(INSTANCE)
        if raw is None:
            return Metadata(self.name)
        try:
            doc = json.loads(raw)
            compute = doc["compute"]
            hostname = compute.get("name")
            attributes = {PREFIX + "VMSIZE": compute.get("vmSize", "")}
            nic = doc["network"]["interface"][0]["ipv4"]["ipAddress"][0]
            attributes[PREFIX + "IPV4_DYNAMIC"] = nic.get("privateIpAddress", "")
            keys = tuple(k["keyData"] for k in compute.get("publicKeys", []) if "keyData" in k)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BadMetadataError("IMDS instance document is not what Azure serves") from None
        attributes = {k: v for k, v in attributes.items() if isinstance(v, str) and v}
        return Metadata(self.name, hostname if isinstance(hostname, str) else None, keys,
                        attributes)  # fmt: skip

    def user_data(self) -> bytes | None:
        raw = self.client.get(USER_DATA)
        if not raw:
            return None
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise BadMetadataError("IMDS userData is not base64") from None
