"""A node in a VM that talks to services on the host: an update server, a release tree.

The guest has no route out (user networking with ``restrict=on``), so a service on the
host's ``127.0.0.1:PORT`` is reached through a guest forward from one fixed guest address,
:data:`HOST_SERVICES_ADDRESS`, on the same port: ``http://127.0.0.1:8000/`` on the host is
``http://10.0.2.100:8000/`` in the guest. The node learns the guest-side URLs from an
``update.conf`` that the Ignition config writes (the same place a user puts them on a real
machine, so nothing node-side is special to VMs).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wellcar.ignition.dataurl import encode_data_url
from wellcar.ignition.errors import IgnitionError
from wellcar.ignition.parse import LATEST, load_json, to_latest_document
from wellcar.ignition.report import Report
from wellcar.vm.config import LOOPBACK, GuestForward, VmError

# Where the guest reaches every host service (a free address of QEMU's 10.0.2.0/24).
HOST_SERVICES_ADDRESS = "10.0.2.100"
# The Omaha endpoint of `wellcar serve` (and of Nebraska), added to a bare server URL.
OMAHA_PATH = "/v1/update/"
# The node's own update.conf: the first file the agent reads (docs/agent.md). The brand id
# is the image's default; a custom brand reads /etc/flatcar/update.conf too, but its own
# /etc/<id>/update.conf first.
UPDATE_CONF_PATH = "/etc/wellcar/update.conf"


@dataclass(frozen=True)
class HostService:
    """A host URL on 127.0.0.1, the forward that reaches it and its URL inside the guest."""

    host_url: str
    guest_url: str
    forward: GuestForward


def host_service(url: str, default_path: str = "/") -> HostService:
    """``http://127.0.0.1:PORT[/path]`` as seen from the guest. Anything but plain HTTP on
    127.0.0.1 with an explicit port is refused (a guest may reach nothing else)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK:
        raise VmError(f"{url!r}: give http://{LOOPBACK}:PORT/... (the guest reaches only loopback)")
    try:
        port = parts.port
    except ValueError as exc:
        raise VmError(f"{url!r}: {exc}") from None
    if port is None:
        raise VmError(f"{url!r} names no port: give http://{LOOPBACK}:PORT/")
    path = parts.path if parts.path not in ("", "/") else default_path
    forward = GuestForward(HOST_SERVICES_ADDRESS, port, port)
    guest = urllib.parse.urlunsplit(("http", f"{HOST_SERVICES_ADDRESS}:{port}", path, "", ""))
    return HostService(url, guest, forward)


def update_server_service(url: str) -> HostService:
    """An update server: a bare base URL gets the Omaha path."""
    return host_service(url, OMAHA_PATH)


def render_update_conf(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value or "\n" in key:
            raise VmError(f"update.conf value of {key} must be one line")
    return "".join(f"{key}={value}\n" for key, value in values.items())


def add_update_conf(document: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of an Ignition document (latest spec) that also writes the node's update.conf
    with ``values``. A config that writes that file itself is refused: which of the two
    would win is not something to leave to merge order."""
    storage = dict(document.get("storage") or {})
    files = list(storage.get("files") or [])
    if any(isinstance(f, dict) and f.get("path") == UPDATE_CONF_PATH for f in files):
        raise VmError(
            f"the config already writes {UPDATE_CONF_PATH}: put SERVER= there, "
            "or drop that file and let --update-server write it"
        )
    contents = render_update_conf(values).encode()
    files.append({
        "path": UPDATE_CONF_PATH,
        "mode": 0o644,
        "overwrite": True,  # the image has a commented default there
        "contents": {"source": encode_data_url(contents, base64_encoded=False)},
    })  # fmt: skip
    storage["files"] = files
    return {**document, "storage": storage}


def ignition_with_update_conf(config: Path | None, values: Mapping[str, str]) -> bytes:
    """The config in ``config`` (any spec Ignition accepts, translated to the latest; none:
    an empty one) with the update.conf added, as JSON bytes."""
    if config is None:
        document: dict[str, Any] = {"ignition": {"version": LATEST}}
    else:
        try:
            data = config.read_bytes()
        except OSError as exc:
            raise VmError(f"cannot read config {config}: {exc.strerror or exc}") from None
        try:
            document = to_latest_document(load_json(data, str(config)), str(config), Report())
        except IgnitionError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise VmError(f"config {config} is not a valid Ignition config: {first}") from None
    return json.dumps(add_update_conf(document, values), indent=1).encode()
