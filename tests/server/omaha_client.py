"""Build update_engine-shaped requests and read answers, for server tests."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient

from wellcar.omaha import (
    FLATCAR_APP_ID,
    AppRequest,
    AppResponse,
    Event,
    Ping,
    Request,
    UpdateCheck,
    parse_response,
    render_request,
    update_engine_request,
)


@dataclass
class Node:
    """One simulated update_engine: what it sends in each kind of request."""

    machine_id: str
    version: str
    track: str = "stable"
    app_id: str = FLATCAR_APP_ID
    board: str = "amd64-usr"
    alias: str | None = None

    def _app(self, **extra: object) -> AppRequest:
        return AppRequest(
            appid=self.app_id,
            version=self.version,
            track=self.track,
            machineid=self.machine_id,
            board=self.board,
            oem="qemu",
            alephversion="4000.0.0",
            machinealias=self.alias,
            bootid="{0b0f3e36-0000-4000-8000-000000000000}",
            **extra,
        )  # type: ignore[arg-type]

    def check_request(self, previous_version: str = "") -> Request:
        app = self._app(
            ping=Ping(active=1),
            updatecheck=UpdateCheck(),
            events=[Event(3, 2, previousversion=previous_version)],
        )
        return self._wrap(app)

    def event_request(
        self,
        etype: int,
        result: int,
        errorcode: int | None = None,
        previous_version: str | None = None,
    ) -> Request:
        app = self._app(
            events=[Event(etype, result, errorcode=errorcode, previousversion=previous_version)]
        )
        return self._wrap(app)

    def _wrap(self, app: AppRequest) -> Request:
        return update_engine_request(app, running=self.version)


def post(client: TestClient, request: Request, path: str = "/v1/update/") -> AppResponse:
    resp = client.post(path, content=render_request(request), headers={"Content-Type": "text/xml"})
    assert resp.status_code == 200, resp.text
    parsed = parse_response(resp.content)
    assert len(parsed.apps) == 1
    return parsed.apps[0]
