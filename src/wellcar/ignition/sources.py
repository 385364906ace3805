"""Where a node finds its config on first boot, first match wins:

1. `ignition.config.url=` (or `flatcar.config.url=`, `coreos.config.url=`) on the kernel
   command line: an explicit per-boot choice, as Ignition's cmdline provider comes first;
   then the user data of the platform the command line names (platform_config.py);
2. QEMU fw_cfg `opt/<brand-domain>/config` (e.g. opt/org.wellcar-linux/config);
3. QEMU fw_cfg `opt/org.flatcar-linux/config`, so Flatcar VM tooling works unchanged;
4. `config.ign` on the OEM partition (mounted at /oem).
No source at all means an empty config: the boot goes on unprovisioned, as Ignition does.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from wellcar.ignition.errors import FetchError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.platform_config import platform_config
from wellcar.ignition.types import Resource

DEFAULT_BRAND_DOMAIN = "org.wellcar-linux"
FLATCAR_DOMAIN = "org.flatcar-linux"
FW_CFG_BY_NAME = Path("/sys/firmware/qemu_fw_cfg/by_name")
OEM_DIR = Path("/oem")
CMDLINE_KEYS = ("ignition.config.url", "flatcar.config.url", "coreos.config.url")
EMPTY_CONFIG = b'{"ignition": {"version": "3.5.0"}}'


@dataclass(frozen=True)
class SourceLocations:
    brand_domain: str = DEFAULT_BRAND_DOMAIN
    fw_cfg_dir: Path = FW_CFG_BY_NAME
    oem_dir: Path = OEM_DIR
    cmdline: Path = Path("/proc/cmdline")


@dataclass(frozen=True)
class FoundConfig:
    data: bytes
    origin: str  # for messages: where it came from


def cmdline_url(cmdline: str) -> str | None:
    for word in shlex.split(cmdline):
        key, sep, value = word.partition("=")
        if sep and key in CMDLINE_KEYS and value:
            return value
    return None


def find_config(where: SourceLocations, fetcher: Fetcher) -> FoundConfig:
    cmdline = where.cmdline.read_text() if where.cmdline.is_file() else ""
    url = cmdline_url(cmdline)
    if url is not None:
        return FoundConfig(fetcher.fetch(Resource(source=url), "kernel command line"), url)
    platform = platform_config(cmdline)  # a platform image's user data (platform_config.py)
    if platform is not None:
        return FoundConfig(platform.data or EMPTY_CONFIG, platform.origin)
    for domain in dict.fromkeys((where.brand_domain, FLATCAR_DOMAIN)):
        raw = where.fw_cfg_dir / "opt" / domain / "config" / "raw"
        if raw.is_file():
            try:
                return FoundConfig(raw.read_bytes(), f"fw_cfg opt/{domain}/config")
            except OSError as exc:
                raise FetchError(f"cannot read {raw}: {exc.strerror}") from None
    oem = where.oem_dir / "config.ign"
    if oem.is_file():
        return FoundConfig(oem.read_bytes(), str(oem))
    return FoundConfig(EMPTY_CONFIG, "no config found (empty config)")
