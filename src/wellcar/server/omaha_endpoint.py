"""`POST /v1/update/`: turn an Omaha request into Nebraska's answer for the same state."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from wellcar.logline import log_fields
from wellcar.omaha import (
    Action,
    AppRequest,
    AppResponse,
    Manifest,
    Package,
    Request,
    Response,
    UpdateCheckResponse,
)
from wellcar.server.clock import Clock
from wellcar.server.data.applications import find_application
from wellcar.server.db.engine import begin_write
from wellcar.server.fleet_codes import LEGACY_GROUP_TRACKS, PackageType, arch_from_board
from wellcar.server.instances import ClientIdentity, register_instance
from wellcar.server.lookup_cache import TtlCache
from wellcar.server.omaha_reads import OfferedPackage, find_group, with_extra_files
from wellcar.server.semver import is_valid
from wellcar.server.updates import check_for_update, register_event

log = logging.getLogger("wellcar.server.omaha")

UPDATE_INTERNAL_ERROR = "error-internal"
APP_UNKNOWN = "error-unknownApplication"
GROUP_UNKNOWN = "error-unknownApplicationOrGroup"
MISSING_MACHINE_ID = "error-missingMachineId"
DATABASE_ERROR = "error-failedToRetrieveUpdatePackageInfo"


@dataclass(frozen=True, slots=True)
class OmahaContext:
    client_ip: str


def _flag(value: bool) -> bool | None:
    # Nebraska's XML encoder omits false booleans (omitempty).
    return True if value else None


def manifest_for(pkg: OfferedPackage, *, multi: bool, is_target: bool) -> Manifest:
    actions: list[Action] = []
    if pkg.action is not None:
        a = pkg.action
        actions.append(
            Action(
                event=a.event,
                sha256=a.sha256,
                display_version=a.chromeos_version or None,
                is_delta_payload=_flag(a.is_delta),
                disable_payload_backoff=_flag(a.disable_payload_backoff),
                metadata_signature_rsa=a.metadata_signature_rsa or None,
                metadata_size=a.metadata_size or None,
                needsadmin=_flag(a.needs_admin),
                deadline=a.deadline or None,
            )
        )
    manifest = Manifest(
        version=pkg.version,
        packages=[
            Package(name=pkg.filename, size=pkg.size or 0, hash=pkg.hash or None, required=True),
            # Extra files ride along, not required (as Nebraska: Flatcar's OEM payloads).
            *(
                Package(
                    name=f.name,
                    size=f.size or 0,
                    hash=f.hash or None,
                    hash_sha256=f.hash256 or None,
                    required=False,
                )
                for f in pkg.extra_files
            ),
        ],
        actions=actions,
    )
    if multi:
        manifest.is_floor = _flag(not is_target)
        manifest.floor_reason = pkg.floor_reason if not is_target else None
        manifest.is_target = _flag(is_target)
    return manifest


class OmahaEndpoint:
    def __init__(self, engine: Engine, clock: Clock, *, lookup_ttl: float = 5.0) -> None:
        self.engine = engine
        self.clock = clock
        # Resolving app ids and tracks is most of the reads of a steady-state check-in.
        self._apps: TtlCache[str, str | None] = TtlCache(lookup_ttl)
        self._groups: TtlCache[tuple[str, str, int], str | None] = TtlCache(lookup_ttl)

    def respond(self, request: Request, ctx: OmahaContext) -> Response:
        response = Response()
        for app in request.apps:
            answer, stop = self._answer_app(request, app, ctx)
            response.apps.append(answer)
            if stop:  # Nebraska stops at the first unknown application
                break
        return response

    def _answer_app(
        self, request: Request, app: AppRequest, ctx: OmahaContext
    ) -> tuple[AppResponse, bool]:
        out = AppResponse(appid=app.appid)
        now = self.clock()
        try:
            with begin_write(self.engine) as conn:
                app_id = self._apps.get_or_load(
                    app.appid, lambda: find_application(conn, app.appid)
                )
                if app_id is None:
                    log.info(
                        "unknown application",
                        extra=log_fields(app_id=app.appid, machine_id=app.machineid),
                    )
                    out.status = APP_UNKNOWN
                    out.updatecheck = UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR)
                    return out, True
                track = app.track or ""
                track = LEGACY_GROUP_TRACKS.get(track.strip("{}").lower(), track)
                os_arch = request.os.arch if request.os else None
                arch = arch_from_board(app.board, os_arch)
                group_id = self._groups.get_or_load(
                    (app_id, track, int(arch)), lambda: find_group(conn, app_id, track, arch)
                )
                if group_id is None:
                    log.info(
                        "unknown track",
                        extra=log_fields(track=track, app_id=app_id, machine_id=app.machineid),
                    )
                    out.status = GROUP_UNKNOWN
                    out.updatecheck = UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR)
                    return out, False
                if not app.machineid:
                    out.status = MISSING_MACHINE_ID
                    if app.updatecheck is not None:
                        out.updatecheck = UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR)
                    return out, False
                version = app.version or ""
                for ev in app.events:
                    why = register_event(
                        conn,
                        app.machineid,
                        app_id,
                        group_id,
                        ev.eventtype,
                        ev.eventresult,
                        ev.previousversion,
                        ev.errorcode,
                        now,
                    )
                    if why:
                        log.debug(
                            "event ignored",
                            extra=log_fields(
                                event_type=ev.eventtype,
                                event_result=ev.eventresult,
                                machine_id=app.machineid,
                                reason=why,
                            ),
                        )
                    out.event_statuses.append("ok")
                who = ClientIdentity(
                    machine_id=app.machineid,
                    ip=ctx.client_ip,
                    alias=app.machinealias or "",
                    oem=app.oem or "",
                    oem_version=app.oemversion or "",
                    aleph_version=app.alephversion or "",
                )
                if app.ping is not None:
                    # An update check registers the instance itself; don't do it twice.
                    if app.updatecheck is None and is_valid(version):
                        register_instance(conn, who, app_id, group_id, version, now)
                    out.ping_status = "ok"
                if app.updatecheck is not None:
                    multi = bool(app.multi_manifest_ok)
                    result = check_for_update(
                        conn, who, app_id, group_id, version, now, multi_manifest=multi
                    )
                    if result.status != "ok":
                        out.status = result.status
                        out.updatecheck = UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR)
                    elif not result.packages:
                        out.updatecheck = UpdateCheckResponse(status="noupdate")
                    elif missing := [
                        p.version
                        for p in result.packages
                        if p.type is PackageType.FLATCAR and p.action is None
                    ]:
                        # As Nebraska: a Flatcar package needs its postinstall action (the
                        # payload's SHA-256); without it the manifest cannot be made.
                        log.warning(
                            "flatcar package without an action",
                            extra=log_fields(version=", ".join(missing), app_id=app_id),
                        )
                        out.updatecheck = UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR)
                    else:
                        last = len(result.packages) - 1
                        offered = with_extra_files(conn, result.packages)
                        out.updatecheck = UpdateCheckResponse(
                            status="ok",
                            # The target's URL, as Nebraska: one URL list serves every
                            # manifest, so a syncer derives the floors' (server/syncer.py).
                            urls=[result.packages[-1].url],
                            manifests=[
                                manifest_for(p, multi=multi, is_target=i == last)
                                for i, p in enumerate(offered)
                            ],
                        )
                        log.info(
                            "update granted",
                            extra=log_fields(
                                machine_id=app.machineid,
                                from_version=version,
                                to_version=result.packages[-1].version,
                            ),
                        )
        except DBAPIError as exc:
            log.error("database error", extra=log_fields(machine_id=app.machineid, error=exc.orig))
            out = AppResponse(
                appid=app.appid,
                status=DATABASE_ERROR,
                updatecheck=UpdateCheckResponse(status=UPDATE_INTERNAL_ERROR),
            )
        return out, False
