"""Who is using the console: the sign-in modes, the signed session cookie, and CSRF tokens.

A session is a cookie holding the role, who signed in and when it expires, signed with
HMAC-SHA256 under a key derived from the admin token: every worker of one server (they
share the tokens) accepts it, and changing the admin token signs everybody out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from wellcar.server.auth import Role, Tokens

COOKIE = "wellcar_console"
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    role: Role
    subject: str  # who signed in: "admin token", "read-only token", an OIDC subject
    expires: datetime  # naive UTC, as the server's clock


def session_key(tokens: Tokens) -> bytes:
    return hmac.new(tokens.admin.token.encode(), b"wellcar-console-session", "sha256").digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def seal(text: str, key: bytes) -> str:
    """`text` readable but not changeable by the browser that keeps it."""
    payload = _b64(text.encode())
    return f"{payload}.{_sign(key, payload)}"


def unseal(value: str | None, key: bytes) -> str | None:
    """What `seal` sealed, or None when the value is missing, changed or malformed."""
    if not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(key, payload).encode()):
        return None
    try:
        return _unb64(payload).decode()
    except ValueError:
        return None


def encode_session(session: ConsoleSession, key: bytes) -> str:
    fields = {
        "role": session.role.value,
        "sub": session.subject,
        "exp": session.expires.isoformat(timespec="seconds"),
    }
    return seal(json.dumps(fields, separators=(",", ":")), key)


def decode_session(value: str | None, key: bytes, now: datetime) -> ConsoleSession | None:
    """The session a cookie holds, or None when it is missing, forged, malformed or expired."""
    text = unseal(value, key)
    if text is None:
        return None
    try:
        fields = json.loads(text)
        session = ConsoleSession(
            role=Role(fields["role"]),
            subject=str(fields["sub"]),
            expires=datetime.fromisoformat(fields["exp"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > now else None


def csrf_token(cookie_value: str, key: bytes) -> str:
    """The token every form of this session carries: a page of another site cannot know it."""
    return _sign(key, "csrf:" + cookie_value)
