"""The Omaha codec: bytes <-> :mod:`wellcar.omaha.model` objects.

Parsing lives in :mod:`.parse`, rendering in :mod:`.render`; this module is the
stable import path for both.
"""

from __future__ import annotations

from .parse import (
    DEFAULT_LIMITS,
    DEFAULT_RESPONSE_LIMITS,
    ParseLimits,
    parse_request,
    parse_response,
)
from .render import XML_DECLARATION, escape_attr, render_request, render_response

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RESPONSE_LIMITS",
    "XML_DECLARATION",
    "ParseLimits",
    "escape_attr",
    "parse_request",
    "parse_response",
    "render_request",
    "render_response",
]
