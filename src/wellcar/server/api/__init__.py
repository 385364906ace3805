"""The REST API (Nebraska's paths and JSON field names)."""

from __future__ import annotations

from fastapi import APIRouter

api_router = APIRouter(prefix="/api")
