"""Provisioning compatible with Ignition: parse, validate and translate configs (spec
2.0-2.4 and 3.0-3.5), fetch what they reference, and apply them once on first boot.

Everything here that runs on the node imports only the Python standard library; only
Butane transpilation (`wellcar.ignition.butane`, host side) needs PyYAML.
"""

from wellcar.ignition.errors import (
    ApplyError,
    ConfigInvalidError,
    ConflictError,
    FetchError,
    IgnitionError,
    UnsafePathError,
    UnsupportedVersionError,
)
from wellcar.ignition.parse import (
    LATEST,
    SUPPORTED_VERSIONS,
    ParsedConfig,
    check_config,
    parse_config,
)
from wellcar.ignition.report import Report
from wellcar.ignition.types import Config

__all__ = [
    "LATEST",
    "SUPPORTED_VERSIONS",
    "ApplyError",
    "Config",
    "ConfigInvalidError",
    "ConflictError",
    "FetchError",
    "IgnitionError",
    "ParsedConfig",
    "Report",
    "UnsafePathError",
    "UnsupportedVersionError",
    "check_config",
    "parse_config",
]
