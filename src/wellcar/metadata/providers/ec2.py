"""Amazon EC2's instance metadata service, IMDSv2: a session token from
``PUT /latest/api/token`` goes with every request (IMDSv1 without it when the PUT is
refused, as afterburn does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MetadataError
from ..model import Metadata
from ..service import MetadataClient

if TYPE_CHECKING:
    from .contract import ProviderSettings

TOKEN_PATH = "latest/api/token"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_TTL_S = "21600"
VERSION = "2019-10-01"
PREFIX = "COREOS_EC2_"
ATTRIBUTES = {
    "HOSTNAME": "meta-data/hostname",
    "PUBLIC_HOSTNAME": "meta-data/public-hostname",
    "IPV4_LOCAL": "meta-data/local-ipv4",
    "IPV4_PUBLIC": "meta-data/public-ipv4",
    "AVAILABILITY_ZONE": "meta-data/placement/availability-zone",
    "INSTANCE_ID": "meta-data/instance-id",
    "INSTANCE_TYPE": "meta-data/instance-type",
    "REGION": "meta-data/placement/region",
}


class Ec2Provider:
    name = "ec2"

    def __init__(self, settings: ProviderSettings) -> None:
        self.client = MetadataClient(settings.base_url, policy=settings.policy)
        self._token_tried = False

    def _session(self) -> MetadataClient:
        if not self._token_tried:
            self._token_tried = True
            try:
                token = self.client.request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: TOKEN_TTL_S})
            except MetadataError as exc:
                if type(exc) is not MetadataError:  # unavailable or garbage: no service
                    raise
                token = None  # refused (403/405): an IMDSv1-only service
            if token:
                self.client.headers = {TOKEN_HEADER: token.decode("ascii", "replace").strip()}
        return self.client

    def _get(self, path: str) -> str | None:
        return self._session().text(f"{VERSION}/{path}")

    def metadata(self) -> Metadata:
        attributes = {}
        for name, path in ATTRIBUTES.items():
            value = self._get(path)
            if value:
                attributes[PREFIX + name] = value
        keys = []
        for line in (self._get("meta-data/public-keys") or "").splitlines():
            index = line.partition("=")[0].strip()
            if index.isdigit():
                key = self._get(f"meta-data/public-keys/{index}/openssh-key")
                if key:
                    keys.append(key)
        return Metadata(self.name, attributes.get(PREFIX + "HOSTNAME"), tuple(keys), attributes)

    def user_data(self) -> bytes | None:
        return self._session().get(f"{VERSION}/user-data")
