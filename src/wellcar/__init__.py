"""Wellcar Linux: build, sign and deliver an immutable, auto-updating OS for containers."""

__version__ = "0.1.0"
