"""The syntax of update.conf and the release file: shell-like ``KEY=VALUE`` lines.

Only the syntax: which keys mean what is :mod:`wellcar.agent.settings`' job.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["MAX_CONF_BYTES", "ConfEntry", "parse_conf_text", "read_conf_file"]

MAX_CONF_BYTES = 256 * 1024  # update.conf is a handful of lines; refuse to slurp a huge file

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNQUOTED_COMMENT = re.compile(r"\s#")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ConfEntry:
    key: str
    value: str
    path: str
    line: int


def _unquote(rest: str, path: str, line: int) -> str:
    """The value after ``=``: ``"double"`` (``\\"``, ``\\\\``, ``\\$``, ``\\```
    escapes), ``'single'`` (literal) or bare (a `` #`` starts a comment; inner
    spaces are kept, as systemd's EnvironmentFile does)."""
    if rest[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(rest):
            c = rest[i]
            if c == "\\" and i + 1 < len(rest) and rest[i + 1] in '"\\$`':
                out.append(rest[i + 1])
                i += 2
                continue
            if c == '"':
                break
            out.append(c)
            i += 1
        else:
            raise ConfigError("unterminated double quote", path=path, line=line)
        value, tail = "".join(out), rest[i + 1 :].strip()
    elif rest[:1] == "'":
        end = rest.find("'", 1)
        if end < 0:
            raise ConfigError("unterminated single quote", path=path, line=line)
        value, tail = rest[1:end], rest[end + 1 :].strip()
    else:
        m = _UNQUOTED_COMMENT.search(rest)
        value = (rest[: m.start()] if m else rest).strip()
        tail = ""
        if '"' in value or "'" in value:
            raise ConfigError(
                "quote inside an unquoted value (quote the whole value)", path=path, line=line
            )
    if tail and not tail.startswith("#"):
        raise ConfigError(
            f"unexpected text after the closing quote: {tail[:40]!r}", path=path, line=line
        )
    if _CONTROL.search(value):
        raise ConfigError("control character in value", path=path, line=line)
    return value


def parse_conf_text(text: str, path: str) -> list[ConfEntry]:
    """Parse shell-like ``KEY=VALUE`` lines (``#`` comments, blank lines, an
    optional ``export``, optional quotes). Any other line is a ConfigError
    naming ``path:line``. A key set twice keeps its last value, as in a shell."""
    entries: list[ConfEntry] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, rest = line.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {line[:40]!r}", path=path, line=lineno)
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise ConfigError(f"invalid key {key[:40]!r}", path=path, line=lineno)
        entries.append(ConfEntry(key, _unquote(rest.strip(), path, lineno), path, lineno))
    return entries


def read_conf_file(path: Path, shown: str) -> list[ConfEntry] | None:
    """The entries of ``path``, or None when it does not exist."""
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError("not a regular file", path=shown)
            data = f.read(MAX_CONF_BYTES + 1)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=shown) from None
    if len(data) > MAX_CONF_BYTES:
        raise ConfigError(f"larger than {MAX_CONF_BYTES} bytes", path=shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("not valid UTF-8", path=shown, line=line) from None
    return parse_conf_text(text, shown)
