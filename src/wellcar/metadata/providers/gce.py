"""Google Compute Engine's metadata server: every request carries
``Metadata-Flavor: Google`` and every genuine answer does too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

FLAVOR = ("Metadata-Flavor", "Google")
ROOT = "computeMetadata/v1"
PREFIX = "COREOS_GCE_"
ATTRIBUTES = {
    "HOSTNAME": "instance/hostname",
    "IP_LOCAL_0": "instance/network-interfaces/0/ip",
    "IP_EXTERNAL_0": "instance/network-interfaces/0/access-configs/0/external-ip",
    "MACHINE_TYPE": "instance/machine-type",
}


def parse_ssh_keys(text: str) -> list[str]:
    """``user:key`` lines (GCE's ssh-keys attribute); every user's key goes to core, as
    afterburn does."""
    keys = []
    for line in text.splitlines():
        _, sep, key = line.partition(":")
        if sep and key.strip():
            keys.append(key.strip())
    return keys


class GceProvider:
    name = "gce"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(f"{settings.base_url}/{ROOT}", headers=dict([FLAVOR]),
                                     policy=settings.policy, required_header=FLAVOR)  # fmt: skip

    def metadata(self) -> Metadata:
        attributes = {}
        for name, path in ATTRIBUTES.items():
            value = self.client.text(path)
            if value:
                attributes[PREFIX + name] = value
        keys = parse_ssh_keys(self.client.text("instance/attributes/ssh-keys") or "")
        if (self.client.text("instance/attributes/block-project-ssh-keys") or "") != "true":
            keys += parse_ssh_keys(self.client.text("project/attributes/ssh-keys") or "")
        hostname = attributes.get(PREFIX + "HOSTNAME")
        return Metadata(self.name, hostname, tuple(dict.fromkeys(keys)), attributes)

    def user_data(self) -> bytes | None:
        return self.client.get("instance/attributes/user-data")
