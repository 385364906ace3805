"""Structured log lines nobody can break out of, for the server and the node agent.

Stdlib only: the agent runs on Debian's python3 on the node. One module owns each part:
``fields`` the keys a line may carry, ``encode`` how a value is written (and read back),
``formatters`` the logfmt and JSON lines, ``journal`` the node's journal, ``configure``
how a process sets all of it up. See docs/logging.md.
"""

from wellcar.logline.configure import LOG_FORMATS, LOG_LEVELS, LogFormat, configure_logging
from wellcar.logline.encode import MAX_VALUE_CHARS, clip, logfmt_value, parse_logfmt
from wellcar.logline.fields import FIELD_KEYS, log_fields
from wellcar.logline.formatters import JsonFormatter, LogfmtFormatter

__all__ = [
    "FIELD_KEYS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_VALUE_CHARS",
    "JsonFormatter",
    "LogFormat",
    "LogfmtFormatter",
    "clip",
    "configure_logging",
    "log_fields",
    "logfmt_value",
    "parse_logfmt",
]
