"""Bearer tokens: an admin token for writes, a read-only token for reads.

`WELLCAR_ADMIN_TOKEN` / `WELLCAR_READ_TOKEN` set them; otherwise each is generated on
first start into the data directory (mode 0600), and its location is printed. Several
server processes on one database must share the same tokens: set the variables.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

ADMIN_ENV = "WELLCAR_ADMIN_TOKEN"
READ_ENV = "WELLCAR_READ_TOKEN"
ADMIN_FILE = "admin-token"
READ_FILE = "read-token"


class Role(Enum):
    READER = "reader"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class TokenSource:
    token: str
    origin: str  # "environment" or the file it was read from / written to
    created: bool = False


def _load_or_create(data_dir: Path, env: str, filename: str) -> TokenSource:
    value = os.environ.get(env, "").strip()
    if value:
        return TokenSource(value, f"${env}")
    path = data_dir / filename
    if path.exists():
        return TokenSource(path.read_text().strip(), str(path))
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: when several processes start at once, one writes and the others read.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return TokenSource(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return TokenSource(token, str(path), created=True)


@dataclass(frozen=True, slots=True)
class Tokens:
    admin: TokenSource
    reader: TokenSource

    @classmethod
    def load(cls, data_dir: Path) -> Tokens:
        return cls(
            admin=_load_or_create(data_dir, ADMIN_ENV, ADMIN_FILE),
            reader=_load_or_create(data_dir, READ_ENV, READ_FILE),
        )

    def role_of(self, bearer: str | None) -> Role | None:
        if not bearer:
            return None
        if hmac.compare_digest(bearer.encode(), self.admin.token.encode()):
            return Role.ADMIN
        if hmac.compare_digest(bearer.encode(), self.reader.token.encode()):
            return Role.READER
        return None
