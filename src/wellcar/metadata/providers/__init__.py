"""One module per platform's metadata service; ``PROVIDERS`` maps a platform's Ignition
id to the provider that reads it. Each provider gives :class:`~..model.Metadata` and the
user data (the Ignition config source of that platform)."""

from __future__ import annotations

from collections.abc import Callable

from .azure import AzureProvider
from .contract import BootCheckIn, Provider, ProviderSettings
from .digitalocean import DigitalOceanProvider
from .ec2 import Ec2Provider
from .gce import GceProvider
from .hetzner import HetznerProvider
from .openstack import OpenStackProvider
from .vmware import VmwareProvider

__all__ = ["PROVIDERS", "BootCheckIn", "Provider", "ProviderSettings", "provider_for"]

# Ignition platform id -> provider. qemu (fw_cfg), metal and proxmoxve have none.
PROVIDERS: dict[str, Callable[[ProviderSettings], Provider]] = {
    "aws": Ec2Provider,
    "gcp": GceProvider,
    "openstack": OpenStackProvider,
    "digitalocean": DigitalOceanProvider,
    "hetzner": HetznerProvider,
    "azure": AzureProvider,
    "vmware": VmwareProvider,
}


def provider_for(platform: str, settings: ProviderSettings | None = None) -> Provider | None:
    maker = PROVIDERS.get(platform)
    return maker(settings or ProviderSettings()) if maker is not None else None
