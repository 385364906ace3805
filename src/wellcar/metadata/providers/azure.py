"""Microsoft Azure: the instance metadata service (IMDS, ``Metadata: true``) for
metadata and user data, and the wireserver for the boot check-in: the goal state names
the container, the role instance and the incarnation, and a health report with state
``Ready`` for them tells Azure the VM is provisioned (afterburn's ``--check-in``; Azure
fails a VM's deployment that never reports)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from ..errors import BadMetadataError
from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

INSTANCE = "metadata/instance?api-version=2021-02-01"
USER_DATA = "metadata/instance/compute/userData?api-version=2021-01-01&format=text"
PREFIX = "COREOS_AZURE_"
GOAL_STATE = "machine/?comp=goalstate"
HEALTH = "machine/?comp=health"
# The wireserver protocol version afterburn and WALinuxAgent speak, and who is asking.
WIRESERVER_HEADERS = {"x-ms-version": "2012-11-30", "x-ms-agent-name": "wellcar-metadata"}


@dataclass(frozen=True)
class GoalState:
    """What a health report must name: the incarnation it answers and the instance."""

    incarnation: str
    container_id: str
    instance_id: str

    @classmethod
    def parse(cls, text: bytes) -> GoalState:
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            raise BadMetadataError("the wireserver's goal state is not XML") from None
        values = (
            root.findtext("Incarnation"),
            root.findtext("Container/ContainerId"),
            root.findtext("Container/RoleInstanceList/RoleInstance/InstanceId"),
        )
        if root.tag != "GoalState" or not all(v and v.strip() for v in values):
            raise BadMetadataError(
                "the wireserver's goal state lacks Incarnation, ContainerId or InstanceId"
            )
        incarnation, container, instance = (v.strip() for v in values if v)
        return cls(incarnation, container, instance)

    def ready_report(self) -> bytes:
        """The health report that marks this instance Ready (the wireserver's schema)."""
        return f"""<?xml version="1.0" encoding="utf-8"?>
<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <GoalStateIncarnation>{escape(self.incarnation)}</GoalStateIncarnation>
  <Container>
    <ContainerId>{escape(self.container_id)}</ContainerId>
    <RoleInstanceList>
      <Role>
        <InstanceId>{escape(self.instance_id)}</InstanceId>
        <Health>
          <State>Ready</State>
        </Health>
      </Role>
    </RoleInstanceList>
  </Container>
</Health>
""".encode()


class AzureProvider:
    name = "azure"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(settings.base_url, headers={"Metadata": "true"},
                                     policy=settings.policy)  # fmt: skip
        self.wireserver = MetadataClient(settings.wireserver_url, headers=WIRESERVER_HEADERS,
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

    def check_in(self) -> str:
        raw = self.wireserver.get(GOAL_STATE)
        if raw is None:
            raise BadMetadataError("the wireserver has no goal state for this VM")
        goal = GoalState.parse(raw)
        self.wireserver.post(HEALTH, goal.ready_report(),
                             {"Content-Type": "text/xml; charset=utf-8"})  # fmt: skip
        return f"reported Ready to the wireserver (incarnation {goal.incarnation})"
