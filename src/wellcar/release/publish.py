"""Tell the update server about a release: register its payload, point the channel at it.

The tree itself is static files: copy it to any web server, CDN or object store (the
``--base-url`` given here is where it is served). Before the server hears of a release,
its payload must be a TUF target the release keys signed, with the same SHA-256 as the
file in the tree: the server never points nodes at something they would refuse.

The API client is wellcar.cli.api_client.ApiClient; this module only needs the calls in
:class:`ReleaseApi`, so it does not import the command line.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wellcar.release.boards import DEFAULT_BOARD, check_board
from wellcar.release.build_dir import sha256_file
from wellcar.release.errors import PublishError
from wellcar.release.tree import ReleaseRecord, ReleaseTree
from wellcar.server.api.models import (
    Channel,
    ChannelCreate,
    ChannelUpdate,
    FlatcarActionInput,
    Package,
    PackageCreate,
)
from wellcar.server.fleet_codes import Arch, PackageType
from wellcar.trust.errors import TrustError
from wellcar.trust.repository import verify_published

PAYLOAD = "update.payload"
BOARD_ARCH = {"amd64-usr": Arch.AMD64, "arm64-usr": Arch.AARCH64}  # every board of BOARDS


class ReleaseApi(Protocol):
    def list_channels(self, app: str) -> list[Channel]: ...
    def create_channel(self, app: str, body: ChannelCreate) -> Channel: ...
    def update_channel(self, app: str, channel_id: str, body: ChannelUpdate) -> Channel: ...
    def list_packages(self, app: str, search_version: str | None = None) -> list[Package]: ...
    def create_package(self, app: str, body: PackageCreate) -> Package: ...


@dataclass(frozen=True)
class PublishOutcome:
    package: Package
    channel: Channel
    created_package: bool
    created_channel: bool


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _sha1(path: Path) -> bytes:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha1").digest()


def check_signed(tree: ReleaseTree, record: ReleaseRecord) -> None:
    """The payload is a published target with the tree file's length and SHA-256."""
    name = f"{record.relative_dir}/{PAYLOAD}"
    path = tree.version_dir(record) / PAYLOAD
    try:
        targets = verify_published(tree.root)
    except TrustError as exc:
        raise PublishError(f"{exc}; nothing was published") from None
    info = targets.signed.targets.get(name)
    if info is None:
        raise PublishError(
            f"{name} is not in the signed TUF targets: finish signing the release "
            "(`wellcar trust publish`) first; nothing was published"
        )
    if info.length != path.stat().st_size or info.hashes.get("sha256") != sha256_file(path):
        raise PublishError(
            f"{path} differs from its signed target (changed after release?); nothing was published"
        )


def publish_release(
    api: ReleaseApi,
    tree_root: Path,
    version: str,
    *,
    app: str,
    base_url: str,
    board: str = DEFAULT_BOARD,
    channel_name: str | None = None,
) -> PublishOutcome:
    tree = ReleaseTree(tree_root)
    try:
        check_board(board)
        record = tree.find(version, board)
    except Exception as exc:
        raise PublishError(str(exc)) from None
    check_signed(tree, record)
    arch = int(BOARD_ARCH[board])
    payload = tree.version_dir(record) / PAYLOAD
    sha256 = bytes.fromhex(record.artifacts[PAYLOAD].sha256)
    url = f"{base_url.rstrip('/')}/{record.relative_dir}/"
    existing = [p for p in api.list_packages(app, version) if p.version == version]
    existing = [p for p in existing if p.arch == arch]
    created_package = False
    if existing:
        package = existing[0]
        if package.flatcar_action is not None and package.flatcar_action.sha256 != _b64(sha256):
            raise PublishError(
                f"the server already has a package {version} with a different payload; "
                "versions are unique — release a new PATCH; nothing was published"
            )
    else:
        package = api.create_package(
            app,
            PackageCreate(
                type=int(PackageType.FLATCAR),
                version=version,
                url=url,
                filename=PAYLOAD,
                description=f"{record.channel} {version} ({board})",
                size=str(payload.stat().st_size),
                hash=_b64(_sha1(payload)),
                arch=arch,
                flatcar_action=FlatcarActionInput(sha256=_b64(sha256)),
            ),
        )
        created_package = True
    name = channel_name or record.channel
    channels = [c for c in api.list_channels(app) if c.name == name and c.arch == arch]
    if channels:
        channel = api.update_channel(app, channels[0].id, ChannelUpdate(package_id=package.id))
        created_channel = False
    else:
        channel = api.create_channel(
            app, ChannelCreate(name=name, arch=arch, package_id=package.id)
        )
        created_channel = True
    return PublishOutcome(package, channel, created_package, created_channel)
