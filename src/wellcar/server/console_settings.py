"""How the console lets people in: the sign-in mode and, for OIDC, the provider and roles.

The flags are Nebraska's (`--oidc-issuer-url`, `--oidc-client-id`, `--oidc-admin-roles`,
`--oidc-viewer-roles`, `--oidc-roles-path`, `--oidc-scopes`). The settings travel to
uvicorn's workers as one JSON value (`to_json`/`from_json`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from wellcar.server.errors import ConfigError


class ConsoleAuth(Enum):
    """How people sign in to the console (`wellcar serve --console-auth`)."""

    TOKEN = "token"  # paste the admin or read-only token once; a session cookie follows
    OIDC = "oidc"  # OpenID Connect, Authorization Code + PKCE; roles from a claim
    LAB = "none"  # nobody signs in and everybody is admin: a lab only, said on every page


def role_list(text: str) -> tuple[str, ...]:
    """Nebraska's role flags: comma-separated names."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer_url: str
    client_id: str
    client_secret: str = ""  # empty: a public client (PKCE only), as Nebraska's
    admin_roles: tuple[str, ...] = ()
    viewer_roles: tuple[str, ...] = ()
    roles_path: str = "roles"  # dot-separated path of the roles claim, e.g. realm_access.roles
    scopes: tuple[str, ...] = ("openid", "profile")

    def check(self) -> None:
        parts = urlsplit(self.issuer_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--oidc-issuer-url {self.issuer_url!r} is not an http(s) URL")
        if not self.client_id:
            raise ConfigError("--oidc-client-id is required with --console-auth oidc")
        if not self.admin_roles and not self.viewer_roles:
            raise ConfigError(
                "--oidc-admin-roles or --oidc-viewer-roles is required: "
                "nobody could sign in without a role"
            )
        if "openid" not in self.scopes:
            raise ConfigError("--oidc-scopes must include openid")
        if not self.roles_path or any(not p for p in self.roles_path.split(".")):
            raise ConfigError(f"--oidc-roles-path {self.roles_path!r} is not a claim path")


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    auth: ConsoleAuth = ConsoleAuth.TOKEN
    oidc: OidcSettings | None = field(default=None)

    def check(self) -> None:
        if self.auth is ConsoleAuth.OIDC:
            if self.oidc is None:
                raise ConfigError("--console-auth oidc needs --oidc-issuer-url and the rest")
            self.oidc.check()

    def to_json(self) -> str:
        return json.dumps(
            {"auth": self.auth.value, "oidc": asdict(self.oidc) if self.oidc else None}
        )

    @classmethod
    def from_json(cls, text: str) -> ConsoleSettings:
        raw = json.loads(text)
        o = raw.get("oidc")
        oidc = None
        if o:
            oidc = OidcSettings(
                issuer_url=str(o["issuer_url"]),
                client_id=str(o["client_id"]),
                client_secret=str(o["client_secret"]),
                admin_roles=tuple(o["admin_roles"]),
                viewer_roles=tuple(o["viewer_roles"]),
                roles_path=str(o["roles_path"]),
                scopes=tuple(o["scopes"]),
            )
        return cls(auth=ConsoleAuth(raw["auth"]), oidc=oidc)
