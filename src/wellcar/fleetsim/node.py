"""One simulated node: update_engine's request sequence as an explicit state machine."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

import httpx

from wellcar.omaha import (
    FLATCAR_APP_ID,
    AppRequest,
    Event,
    OmahaError,
    Ping,
    Response,
    UpdateCheck,
    parse_response,
    render_request,
    update_engine_request,
)

ROLLBACK_ERROR = 44


class NodePhase(Enum):
    IDLE = "idle"  # next: an update check
    DOWNLOADING = "downloading"  # next: 13/1 then 14/1
    INSTALLED = "installed"  # next: 3/1
    NEED_REBOOT = "need-reboot"  # next: reboot into the new version (or fail and roll back)


@dataclass
class SimulatedNode:
    machine_id: str
    version: str
    track: str = "stable"
    app_id: str = FLATCAR_APP_ID
    failure_rate: float = 0.0  # chance that a new version fails its health check
    phase: NodePhase = NodePhase.IDLE
    previous_version: str = ""  # sent once, on the first check after a reboot
    offered: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    log: list[str] = field(default_factory=list)

    def _request(self, events: list[Event], *, check: bool = False) -> bytes:
        app = AppRequest(
            appid=self.app_id,
            version=self.version,
            track=self.track,
            machineid=self.machine_id,
            board="amd64-usr",
            oem="qemu",
            alephversion="4000.0.0",
            bootid="{00000000-0000-4000-8000-000000000001}",
            ping=Ping(active=1) if check else None,
            updatecheck=UpdateCheck() if check else None,
            events=events,
        )
        return render_request(update_engine_request(app, running=self.version))

    def _post(self, http: httpx.Client, url: str, body: bytes) -> Response | None:
        try:
            r = http.post(url, content=body, headers={"Content-Type": "text/xml"}, timeout=10)
            r.raise_for_status()
            return parse_response(r.content)
        except (httpx.HTTPError, OmahaError) as exc:
            self.log.append(f"request failed: {exc}")
            return None

    def step(self, http: httpx.Client, url: str) -> str:
        """Do the next thing update_engine would do; return a short description."""
        if self.phase is NodePhase.IDLE:
            body = self._request([Event(3, 2, previousversion=self.previous_version)], check=True)
            resp = self._post(http, url, body)
            if resp is None or not resp.apps:
                return "check failed"
            self.previous_version = ""
            uc = resp.apps[0].updatecheck
            if uc is not None and uc.status == "ok" and uc.manifests:
                self.offered = uc.manifests[-1].version
                self.phase = NodePhase.DOWNLOADING
                return f"offered {self.offered}"
            return resp.apps[0].status if resp.apps[0].status != "ok" else "no update"
        if self.phase is NodePhase.DOWNLOADING:
            for etype in (13, 14):
                self._post(http, url, self._request([Event(etype, 1)]))
            self.phase = NodePhase.INSTALLED
            return "downloaded"
        if self.phase is NodePhase.INSTALLED:
            self._post(http, url, self._request([Event(3, 1)]))
            self.phase = NodePhase.NEED_REBOOT
            return "installed, needs reboot"
        # NEED_REBOOT: reboot; a bad version falls back and reports a rollback.
        assert self.offered is not None
        self.phase = NodePhase.IDLE
        if self.rng.random() < self.failure_rate:
            self._post(http, url, self._request([Event(3, 0, errorcode=ROLLBACK_ERROR)]))
            self.offered = None
            return "rolled back"
        self.previous_version, self.version, self.offered = self.version, self.offered, None
        return f"rebooted into {self.version}"
