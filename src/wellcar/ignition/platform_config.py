"""The platform's user data as the config source (Ignition's platform providers).

When the kernel command line names a platform with a metadata service (a platform image's
boot entry does: wellcar.image.platforms), its user data is the config, fetched by the
same provider the metadata agent uses (wellcar.metadata.providers: EC2 IMDSv2, GCE,
OpenStack config drive then service, DigitalOcean, Hetzner, Azure IMDS, VMware
guestinfo). QEMU keeps fw_cfg (sources.py). Decisions, as Flatcar's Ignition makes them
unless noted (docs/platforms.md):

- no user data: an empty config, the boot goes on unprovisioned;
- a cloud-config or a script as user data: an empty config (coreos-cloudinit's input);
- a service that stays absent, slow or broken after the bounded retries: an empty config
  and the console says why (Ignition would stop the boot; the issue asks a node that
  boots);
- user data that is neither: parsed as a config, so a broken one stops the boot with
  the usual clear message.
"""

from __future__ import annotations

from dataclasses import dataclass

from wellcar.metadata.errors import MetadataError
from wellcar.metadata.platform_id import platform_from_cmdline
from wellcar.metadata.providers import ProviderSettings, provider_for

NOT_IGNITION = (b"#cloud-config", b"#!")


@dataclass(frozen=True)
class PlatformConfig:
    data: bytes | None  # None: use the empty config
    origin: str


def platform_config(
    cmdline: str, settings: ProviderSettings | None = None
) -> PlatformConfig | None:
    """The config the platform gives, or None when no platform with a metadata service
    is named (the other sources are then tried)."""
    platform = platform_from_cmdline(cmdline)
    if platform is None:
        return None
    provider = provider_for(platform.ignition, settings)
    if provider is None:
        return None
    where = f"{platform.ignition} user data"
    try:
        data = provider.user_data()
    except MetadataError as exc:
        return PlatformConfig(None, f"{where} unavailable ({exc}); booting with an empty config")
    if not data or not data.strip():
        return PlatformConfig(None, f"{where}: none given (empty config)")
    if data.lstrip().startswith(NOT_IGNITION):
        return PlatformConfig(
            None, f"{where}: a cloud-config or script, not Ignition (empty config)"
        )
    return PlatformConfig(data, where)
