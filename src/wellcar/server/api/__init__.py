"""The server's HTTP layer: the REST API (Nebraska's paths and JSON field names), the
FleetLock routes, and the application that mounts them next to the Omaha endpoint (app.py,
asgi.py for uvicorn workers)."""

from __future__ import annotations

from fastapi import APIRouter

from wellcar.server.api import activity, applications, channels, groups, instances, packages, stats

# The modules serving the endpoints of `endpoints.py`, each under /api.
REST_MODULES = (applications, groups, channels, packages, instances, stats, activity)

api_router = APIRouter(prefix="/api")
for _module in REST_MODULES:
    api_router.include_router(_module.router)
