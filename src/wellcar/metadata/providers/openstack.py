"""OpenStack: the config drive first (a disk labelled ``config-2``, ISO 9660 or VFAT),
then the metadata service, as Ignition and afterburn do. Both give
``openstack/latest/meta_data.json`` and ``openstack/latest/user_data``."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadMetadataError, MetadataError
from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

DRIVE_LABELS = ("config-2", "CONFIG-2")  # VFAT drives may carry the label in capitals
BY_LABEL = Path("/dev/disk/by-label")
META_DATA = "openstack/latest/meta_data.json"
USER_DATA = "openstack/latest/user_data"
PREFIX = "COREOS_OPENSTACK_"


def find_config_drive(by_label: Path = BY_LABEL) -> Path | None:
    for label in DRIVE_LABELS:
        device = by_label / label
        if device.exists():
            return device
    return None


@contextmanager
def mounted(device: Path) -> Iterator[Path]:
    """The drive mounted read-only on a private temporary directory for the block."""
    with tempfile.TemporaryDirectory(prefix="config-drive-") as where:
        done = subprocess.run(["mount", "-o", "ro", str(device), where], capture_output=True,
                              text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise MetadataError(f"cannot mount the config drive {device}: {done.stderr.strip()}")
        try:
            yield Path(where)
        finally:
            subprocess.run(["umount", where], capture_output=True, check=False)


def parse_meta_data(raw: bytes, origin: str) -> Metadata:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadMetadataError(f"{origin}: meta_data.json is not JSON") from None
    if not isinstance(doc, dict):
        raise BadMetadataError(f"{origin}: meta_data.json is not a JSON object")
    attributes = {}
    for name, key in (("HOSTNAME", "hostname"), ("INSTANCE_ID", "uuid"),
                      ("AVAILABILITY_ZONE", "availability_zone")):  # fmt: skip
        value = doc.get(key)
        if isinstance(value, str) and value:
            attributes[PREFIX + name] = value
    keys = doc.get("public_keys")
    ssh_keys = tuple(k.strip() for k in keys.values() if isinstance(k, str)) if isinstance(
        keys, dict) else ()  # fmt: skip
    return Metadata("openstack", attributes.get(PREFIX + "HOSTNAME"), ssh_keys, attributes)


class OpenStackProvider:
    name = "openstack"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(settings.base_url, policy=settings.policy)
        self.drive_dir = settings.config_drive

    def _from_drive(self, name: str) -> tuple[bool, bytes | None]:
        """(a drive was there, the file's bytes or None)."""
        if self.drive_dir is not None:
            path = self.drive_dir / name
            return True, path.read_bytes() if path.is_file() else None
        device = find_config_drive()
        if device is None:
            return False, None
        with mounted(device) as where:
            path = where / name
            return True, path.read_bytes() if path.is_file() else None

    def metadata(self) -> Metadata:
        found, raw = self._from_drive(META_DATA)
        origin = "config drive"
        if not found:
            raw, origin = self.client.get(META_DATA), "metadata service"
        if raw is None:
            return Metadata(self.name)
        meta = parse_meta_data(raw, origin)
        if not found:  # the service's EC2-style side has the addresses
            for name, path in (("IPV4_LOCAL", "latest/meta-data/local-ipv4"),
                               ("IPV4_PUBLIC", "latest/meta-data/public-ipv4"),
                               ("INSTANCE_TYPE", "latest/meta-data/instance-type")):  # fmt: skip
                value = self.client.text(path)
                if value:
                    meta.attributes[PREFIX + name] = value
        return meta

    def user_data(self) -> bytes | None:
        found, raw = self._from_drive(USER_DATA)
        return raw if found else self.client.get(USER_DATA)
