"""The syncer: ``wellcar serve --sync-from URL`` follows an upstream Omaha server's channels,
as Nebraska's syncer follows Flatcar's public one.

For each channel of the Flatcar application named ``alpha``, ``beta``, ``stable``, ``edge``
or ``lts-*`` (Nebraska's rule), per architecture, the syncer sends the upstream an update
check as update_engine would, with the channel's current version (``766.0.0`` for an
empty channel, as Nebraska) as its own and ``multi_manifest_ok``, so the upstream answers
with every floor on the way and the target. Each manifest becomes a package here (reused
when one of that version and arch exists and matches the upstream's size and hash); the
floors become the channel's floors, and the channel moves to the target: the one marked
``is_target``, else the last one that is not a floor (older upstreams), none when every
manifest is a floor.

One channel's changes are one transaction: an upstream that answers garbage, a package
that does not match, or a download that fails its SHA-256 leaves the channel as it was,
and the next round tries again. With ``--host-packages DIR`` the payloads are downloaded
into DIR (checked against the action's SHA-256 and the size before they are kept) and the
packages point at this server's ``/flatcar/`` (``--public-url``), so nodes never reach
the upstream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from wellcar.logline import log_fields
from wellcar.omaha import (
    FLATCAR_APP_ID,
    AppRequest,
    Manifest,
    OmahaParseError,
    UpdateCheck,
    UpdateCheckResponse,
    parse_response,
    render_request,
    update_engine_request,
)
from wellcar.omaha import (
    Package as OmahaPackage,
)
from wellcar.server.clock import Clock
from wellcar.server.data import channels as channel_data
from wellcar.server.data import floors as floor_data
from wellcar.server.data import packages as package_data
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.errors import ServerError
from wellcar.server.fleet_codes import Arch, PackageType

log = logging.getLogger(__name__)

FIRST_VERSION = "766.0.0"  # what Nebraska's syncer sends for a channel without a package
HOSTED_PATH = "/flatcar/"  # where hosted payloads are served (Nebraska's path)
BOARDS = {Arch.AMD64: "amd64-usr", Arch.AARCH64: "arm64-usr"}
DEFAULT_SYNC_INTERVAL = timedelta(hours=1)
FLOOR_REASON = "Synced from upstream"
_FLATCAR_APP = canonical_uuid(FLATCAR_APP_ID) or FLATCAR_APP_ID


class SyncError(ServerError):
    """One channel could not be synced this round; it is left as it was."""


def is_synced_channel(name: str) -> bool:
    return name in ("alpha", "beta", "stable", "edge") or name.startswith("lts-")


@dataclass(frozen=True)
class SyncSettings:
    upstream_url: str  # the upstream's Omaha endpoint, e.g. https://public.update.flatcar-linux.net/v1/update/
    interval: timedelta = DEFAULT_SYNC_INTERVAL
    host_packages_dir: Path | None = None
    public_url: str | None = None  # this server's URL, for hosted packages
    # Where each version's payload is upstream, {{VERSION}} and {{ARCH}} replaced
    # (Nebraska's --flatcar-packages-url); None: derived from the answer's URL.
    packages_url: str | None = None

    def check(self) -> None:
        if not self.upstream_url.startswith(("http://", "https://")):
            raise SyncError(f"--sync-from {self.upstream_url!r}: give the upstream's http(s) URL")
        if self.host_packages_dir is not None and not self.public_url:
            raise SyncError("--host-packages needs --public-url (where nodes reach this server)")
        if self.interval < timedelta(minutes=1):
            raise SyncError("the sync interval must be at least a minute")


@dataclass(frozen=True)
class SyncedChannel:
    id: str
    name: str
    arch: Arch
    version: str

    @property
    def board(self) -> str:
        return BOARDS[self.arch]

    @property
    def arch_name(self) -> str:
        """``amd64``: what Flatcar's paths and Nebraska's ``{{ARCH}}`` call the arch."""
        return self.board.removesuffix("-usr")


@dataclass
class Syncer:
    engine: Engine
    clock: Clock
    settings: SyncSettings
    transport: httpx.BaseTransport | None = None  # tests: an in-process upstream
    machine_ids: dict[str, str] = field(default_factory=dict)  # channel id -> our machine id

    def channels(self) -> list[SyncedChannel]:
        c = t.channel
        query = (
            select(c.c.id, c.c.name, c.c.arch, t.package.c.version)
            .select_from(c.outerjoin(t.package, t.package.c.id == c.c.package_id))
            .where(c.c.application_id == _FLATCAR_APP)
            .order_by(c.c.name, c.c.arch)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            SyncedChannel(str(r.id), r.name, Arch(r.arch), r.version or FIRST_VERSION)
            for r in rows
            if is_synced_channel(r.name) and Arch(r.arch) in BOARDS
        ]

    def sync_once(self) -> dict[str, str]:
        """One round over every synced channel; {channel name/arch: new version}."""
        moved: dict[str, str] = {}
        with httpx.Client(timeout=60, transport=self.transport, follow_redirects=True) as http:
            for channel in self.channels():
                label = f"{channel.name}/{channel.board}"
                try:
                    update = self._ask(http, channel)
                    if update is None:
                        continue
                    target = self._apply(http, channel, update)
                except (SyncError, SQLAlchemyError) as exc:
                    log.warning("channel not synced", extra=log_fields(channel=label, error=exc))
                    continue
                if target is not None and target != channel.version:
                    moved[label] = target
                    log.info("channel synced", extra=log_fields(channel=label, version=target))
        return moved

    # --- asking the upstream --------------------------------------------------------------

    def _request(self, channel: SyncedChannel) -> bytes:
        machine_id = self.machine_ids.setdefault(channel.id, "{" + str(uuid.uuid4()) + "}")
        app = AppRequest(
            appid=FLATCAR_APP_ID,
            version=channel.version,
            track=channel.name,
            machineid=machine_id,
            bootid="{" + str(uuid.uuid4()) + "}",
            board=channel.board,
            updatecheck=UpdateCheck(),
            multi_manifest_ok=True,
        )
        # Nebraska's syncer names itself as the old CoreOS update engine.
        request = update_engine_request(
            app, running=channel.version, updater="CoreOSUpdateEngine-0.1.0.0"
        )
        return render_request(request)

    def _ask(self, http: httpx.Client, channel: SyncedChannel) -> UpdateCheckResponse | None:
        try:
            answer = http.post(self.settings.upstream_url, content=self._request(channel),
                               headers={"Content-Type": "text/xml"})  # fmt: skip
        except httpx.HTTPError as exc:
            raise SyncError(f"upstream {self.settings.upstream_url}: {exc}") from None
        if answer.status_code != 200:
            raise SyncError(f"upstream answered HTTP {answer.status_code}")
        try:
            response = parse_response(answer.content)
        except OmahaParseError as exc:
            raise SyncError(f"upstream answer is not Omaha: {exc}") from None
        apps = [a for a in response.apps if canonical_uuid(a.appid) == _FLATCAR_APP]
        if not apps or apps[0].updatecheck is None:
            raise SyncError("upstream answer has no update check for the Flatcar app")
        check = apps[0].updatecheck
        if check.status != "ok" or not check.manifests:
            return None  # noupdate, or an error status for this track: nothing to do
        if not check.urls:
            raise SyncError("upstream offered an update without a URL")
        return check

    # --- taking the answer -----------------------------------------------------------------

    def _apply(
        self, http: httpx.Client, channel: SyncedChannel, update: UpdateCheckResponse
    ) -> str | None:
        for manifest in update.manifests:
            if not manifest.packages:
                raise SyncError(f"upstream manifest {manifest.version} has no package")
        hosted = {m.version: self._host(http, channel, update, m) for m in update.manifests}
        target = _target(update.manifests)
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                ids = {m.version: self._package(conn, channel, update, m, hosted[m.version])
                       for m in update.manifests}  # fmt: skip
                for manifest in update.manifests:
                    if manifest.is_floor:
                        reason = manifest.floor_reason or FLOOR_REASON
                        floor_data.add_floor(conn, channel.id, ids[manifest.version], reason, now)
                if target is not None:
                    changes = channel_data.ChannelChanges(
                        name=None, color=None, package_id=ids[target.version], arch=None,
                        sent=frozenset({"package_id"}),
                    )  # fmt: skip
                    channel_data.update_channel(conn, _FLATCAR_APP, channel.id, changes, now)
        except ServerError as exc:  # a data rule refused it: nothing of it was registered
            raise SyncError(str(exc)) from None
        return target.version if target is not None else None

    def _package(
        self,
        conn: Connection,
        channel: SyncedChannel,
        update: UpdateCheckResponse,
        manifest: Manifest,
        hosted_url: str | None,
    ) -> str:
        offered = manifest.packages[0]
        existing = conn.execute(
            select(t.package.c.id, t.package.c.size, t.package.c.hash).where(
                t.package.c.application_id == _FLATCAR_APP,
                t.package.c.version == manifest.version,
                t.package.c.arch == int(channel.arch),
            )
        ).first()
        if existing is not None:
            if (existing.hash or "") != (offered.hash or "") or existing.size != offered.size:
                raise SyncError(
                    f"package {manifest.version} here differs from the upstream's "
                    "(size or hash): not synced"
                )
            return str(existing.id)
        action = manifest.actions[0] if manifest.actions else None
        url = hosted_url or package_url(
            update, manifest, channel.arch_name, self.settings.packages_url
        )
        extra_files = [
            package_data.NewPackageFile(f.name, f.size, f.hash, f.hash_sha256)
            for f in manifest.packages[1:]
        ]
        new = package_data.NewPackage(
            type=int(PackageType.FLATCAR), version=manifest.version, url=url,
            filename=offered.name,
            description=None, size=offered.size, hash=offered.hash, arch=int(channel.arch),
            channels_blacklist=None,
            flatcar_action=None if action is None else package_data.FlatcarActionFields(
                sha256=action.sha256 or "", event=action.event,
                chromeos_version=action.display_version or "",
                needs_admin=bool(action.needsadmin), is_delta=bool(action.is_delta_payload),
                disable_payload_backoff=bool(action.disable_payload_backoff),
                metadata_signature_rsa=action.metadata_signature_rsa or "",
                metadata_size=action.metadata_size or "", deadline=action.deadline or "",
                sent=frozenset(),
            ),
            extra_files=extra_files,
        )  # fmt: skip
        return package_data.create_package(conn, _FLATCAR_APP, new, self.clock())

    def _host(
        self,
        http: httpx.Client,
        channel: SyncedChannel,
        update: UpdateCheckResponse,
        manifest: Manifest,
    ) -> str | None:
        """Download the manifest's payload and extra files into the hosting directory,
        each checked before it is kept; the URL they are served at (None: not hosting).

        Layout: ``DIR/<arch>/<version>/<name as upstream>``, so the names a node sees
        (Flatcar's update_engine goes by an extra file's name) are the upstream's."""
        directory = self.settings.host_packages_dir
        if directory is None:
            return None
        assert self.settings.public_url is not None
        arch = channel.arch_name
        base = package_url(update, manifest, arch, self.settings.packages_url).rstrip("/")
        here = directory / arch / manifest.version
        here.mkdir(parents=True, exist_ok=True)
        payload, *extras = manifest.packages
        _download(http, f"{base}/{payload.name}", here / hosted_file_name(payload.name),
                  payload.size, ("sha256", _action_sha256(manifest)))  # fmt: skip
        for extra in extras:
            _download(http, f"{base}/{extra.name}", here / hosted_file_name(extra.name), extra.size,
                      extra_file_check(manifest.version, extra))  # fmt: skip
        return f"{self.settings.public_url.rstrip('/')}{HOSTED_PATH}{arch}/{manifest.version}/"


def hosted_file_name(name: str) -> str:
    """An upstream file name as a plain name in the hosting directory (never a path)."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise SyncError(f"upstream file name {name!r} is not a plain file name")
    return name


def extra_file_check(version: str, extra: OmahaPackage) -> tuple[str, str]:
    """How an extra file is checked: its SHA-256 (hex or base64) when given, else the
    SHA-1 every Omaha package carries; neither: it cannot be hosted."""
    for algorithm, value in (("sha256", extra.hash_sha256), ("sha1", extra.hash)):
        if value:
            return algorithm, _hex_digest(value, algorithm)
    raise SyncError(f"{version}: extra file {extra.name} has no hash to check a download by")


def _hex_digest(value: str, algorithm: str) -> str:
    size = hashlib.new(algorithm).digest_size
    text = value.strip().lower()
    if len(text) == size * 2 and all(c in "0123456789abcdef" for c in text):
        return text
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise SyncError(f"{value!r} is not a {algorithm} digest (hex or base64)")
    return raw.hex()


def _download(http: httpx.Client, url: str, final: Path, size: int, check: tuple[str, str]) -> None:
    """``url`` into ``final`` through a temporary file, kept only when ``size`` (if known)
    and the digest match; a file already there with that digest is not fetched again."""
    algorithm, digest = check
    if final.is_file() and _digest_file(final, algorithm) == digest:
        return
    fd, temporary = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    hasher, received = hashlib.new(algorithm), 0
    try:
        with os.fdopen(fd, "wb") as out, http.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise SyncError(f"{url}: HTTP {answer.status_code}")
            for chunk in answer.iter_bytes():
                received += len(chunk)
                if size and received > size:
                    raise SyncError(f"{url}: larger than the {size} bytes offered")
                hasher.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if (size and received != size) or hasher.hexdigest() != digest:
            raise SyncError(f"{url}: the download does not match the offered size and {algorithm}")
        os.replace(temporary, final)
    except httpx.HTTPError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SyncError(f"{url}: {exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def package_url(
    update: UpdateCheckResponse, manifest: Manifest, arch: str, template: str | None
) -> str:
    """Where ``manifest``'s payload is upstream. An answer has one URL list for all its
    manifests, the target's (Nebraska, and this server, answer so); a floor's URL is the
    target's with the target's version replaced by the floor's, which holds for Flatcar's
    release server (``.../amd64-usr/4459.2.2/``) and for Wellcar's tree. Where it cannot be
    derived, ``--sync-packages-url`` must say where payloads are."""
    if template is not None:
        return template.replace("{{VERSION}}", manifest.version).replace("{{ARCH}}", arch)
    url = update.urls[0]
    target = _target(update.manifests)
    if target is None or manifest.version == target.version:
        return url
    if target.version not in url:
        raise SyncError(
            f"cannot tell where {manifest.version}'s payload is (the upstream's URL {url} does "
            "not name a version): give --sync-packages-url"
        )
    return url.replace(target.version, manifest.version)


def _target(manifests: list[Manifest]) -> Manifest | None:
    marked = [m for m in manifests if m.is_target]
    if marked:
        return marked[-1]
    not_floors = [m for m in manifests if not m.is_floor]
    return not_floors[-1] if not_floors else None


def _action_sha256(manifest: Manifest) -> str:
    action = manifest.actions[0] if manifest.actions else None
    if action is None or not action.sha256:
        raise SyncError(f"manifest {manifest.version} has no sha256: cannot check a download")
    try:  # Omaha's action sha256 is base64, nothing else
        return base64.b64decode(action.sha256, validate=True).hex()
    except (binascii.Error, ValueError):
        raise SyncError(f"manifest {manifest.version}: sha256 is not base64") from None


def _digest_file(path: Path, algorithm: str) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, algorithm).hexdigest()
