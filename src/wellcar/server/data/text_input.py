"""How optional text from a request is stored."""

from __future__ import annotations


def blank_to_none(value: str | None) -> str | None:
    """Stripped text, or None for missing or blank text (which clears the field)."""
    if value is None or not value.strip():
        return None
    return value.strip()
