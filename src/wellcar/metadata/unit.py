"""The systemd unit that runs the metadata agent on every boot of a platform image.

It runs only where the command line names a platform with a metadata service (the
``ConditionKernelCommandLine=`` lines below), after first-boot provisioning, so a
hostname or keys from the Ignition config are already in place. ``Alias=`` keeps
Flatcar's unit name for units that order themselves after it.
"""

from __future__ import annotations

from .platform_id import IGNITION_KEY
from .providers import PROVIDERS

UNIT_ALIAS = "coreos-metadata.service"


def unit_name(brand_id: str) -> str:
    return f"{brand_id}-metadata.service"


def render_unit(brand_id: str, brand_name: str, python_path: str) -> str:
    conditions = "\n".join(
        f"ConditionKernelCommandLine=|{IGNITION_KEY}={platform}" for platform in PROVIDERS
    )
    return f"""[Unit]
Description={brand_name} platform metadata (hostname, ssh keys, /run/metadata/flatcar)
{conditions}
After={brand_id}-ignition.service network-online.target
Wants=network-online.target
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=PYTHONPATH={python_path}
ExecStart=/usr/bin/python3 -m wellcar.metadata run
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
Alias={UNIT_ALIAS}
"""
