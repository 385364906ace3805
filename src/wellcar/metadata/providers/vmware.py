"""VMware: guestinfo variables through ``vmware-rpctool`` (open-vm-tools) where the
image has it; ``guestinfo.ignition.config.data`` (+ ``.encoding``: base64 or
gzip+base64) is the user data, as Ignition's vmware provider reads it."""

from __future__ import annotations

import base64
import binascii
import gzip
import shutil
import subprocess
from typing import TYPE_CHECKING

from ..errors import BadMetadataError, MetadataError
from ..model import Metadata

if TYPE_CHECKING:
    from .contract import ProviderSettings

DATA = "guestinfo.ignition.config.data"
HOSTNAME = "guestinfo.hostname"


def _guestinfo(name: str) -> str | None:
    tool = shutil.which("vmware-rpctool")
    if tool is None:
        raise MetadataError("vmware-rpctool is not installed; guestinfo cannot be read")
    done = subprocess.run([tool, f"info-get {name}"], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def decode(data: str, encoding: str | None) -> bytes:
    try:
        if encoding in (None, ""):
            return data.encode()
        if encoding in ("base64", "b64"):
            return base64.b64decode(data, validate=True)
        if encoding in ("gzip+base64", "gz+b64"):
            return gzip.decompress(base64.b64decode(data, validate=True))
    except (binascii.Error, OSError, EOFError):
        raise BadMetadataError(f"{DATA} is not valid {encoding}") from None
    raise BadMetadataError(f"{DATA}.encoding {encoding!r} is not base64 or gzip+base64")


class VmwareProvider:
    name = "vmware"

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def metadata(self) -> Metadata:
        return Metadata(self.name, _guestinfo(HOSTNAME))

    def user_data(self) -> bytes | None:
        data = _guestinfo(DATA)
        return None if data is None else decode(data, _guestinfo(f"{DATA}.encoding"))
