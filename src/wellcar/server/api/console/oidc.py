"""OpenID Connect for people: Authorization Code with PKCE (S256), roles from a claim.

The console is the relying party. It sends the browser to the provider with a state, a
nonce and a PKCE challenge (kept in a short-lived signed cookie), trades the code for
tokens at the token endpoint with the verifier, checks the ID token (signature against
the provider's JWKS, issuer, audience, expiry, nonce) and reads the roles at
`--oidc-roles-path` in it: a role in `--oidc-admin-roles` makes an admin, else one in
`--oidc-viewer-roles` a viewer, else nobody is let in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from wellcar.server.auth import Role
from wellcar.server.console_settings import OidcSettings

HTTP_TIMEOUT = 10.0
FLOW_COOKIE = "wellcar_oidc_flow"
FLOW_LIFETIME_S = 600  # the person has ten minutes at the provider's login page
# Asymmetric algorithms only: "none" and HMAC with a public key are the classic forgeries.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")


class OidcError(Exception):
    """A sign-in that cannot go on: the provider, the tokens or the roles say no."""


@dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Flow:
    """What the callback must match: kept in a signed cookie between the two redirects."""

    state: str
    nonce: str
    verifier: str
    next: str
    started: float

    def to_json(self) -> str:
        return json.dumps(
            [self.state, self.nonce, self.verifier, self.next, self.started],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Flow:
        state, nonce, verifier, next_url, started = json.loads(text)
        return cls(str(state), str(nonce), str(verifier), str(next_url), float(started))


@dataclass(frozen=True, slots=True)
class SignedIn:
    role: Role
    subject: str


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The claim at a dot-separated path (`realm_access.roles`), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def roles_of(claims: dict[str, Any], path: str) -> set[str]:
    value = claim_at(claims, path)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


def role_for(claims: dict[str, Any], settings: OidcSettings) -> Role:
    roles = roles_of(claims, settings.roles_path)
    if roles & set(settings.admin_roles):
        return Role.ADMIN
    if roles & set(settings.viewer_roles):
        return Role.READER
    shown = ", ".join(sorted(roles)) or "none"
    raise OidcError(
        f"signed in, but the roles at '{settings.roles_path}' ({shown}) include neither "
        "an admin nor a viewer role of this server"
    )


def subject_of(claims: dict[str, Any]) -> str:
    for name in ("preferred_username", "email", "name", "sub"):
        if isinstance(claims.get(name), str) and claims[name]:
            return str(claims[name])[:200]
    return "unknown"


class OidcClient:
    """The console's relying party for one provider; discovery and keys are cached."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._provider: Provider | None = None
        self._keys: jwt.PyJWKSet | None = None

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the OIDC provider did not answer {url} properly: {exc}") from exc
        if not isinstance(body, dict):
            raise OidcError(f"the OIDC provider answered {url} with something else than JSON")
        return body

    def provider(self) -> Provider:
        with self._lock:
            if self._provider is None:
                issuer = self.settings.issuer_url.rstrip("/")
                doc = self._get_json(f"{issuer}/.well-known/openid-configuration")
                try:
                    found = Provider(
                        issuer=str(doc["issuer"]),
                        authorization_endpoint=str(doc["authorization_endpoint"]),
                        token_endpoint=str(doc["token_endpoint"]),
                        jwks_uri=str(doc["jwks_uri"]),
                    )
                except KeyError as exc:
                    raise OidcError(f"the provider's discovery document lacks {exc}") from exc
                # OIDC Discovery: the document must name the issuer it was fetched for.
                if found.issuer.rstrip("/") != issuer:
                    raise OidcError(f"the provider calls itself {found.issuer!r}, not {issuer!r}")
                self._provider = found
            return self._provider

    def start(self, redirect_uri: str, next_url: str) -> tuple[str, Flow]:
        """The provider's authorization URL to send the browser to, and the flow to keep."""
        flow = Flow(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            next=next_url,
            started=time.time(),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": pkce_challenge(flow.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.provider().authorization_endpoint}?{query}", flow

    def _signing_key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is not a JWT: {exc}") from exc
        jwks_uri = self.provider().jwks_uri
        for refresh in (False, True):  # a provider that rotated its keys: fetch them again
            with self._lock:
                if self._keys is None or refresh:
                    try:
                        self._keys = jwt.PyJWKSet.from_dict(self._get_json(jwks_uri))
                    except jwt.PyJWTError as exc:
                        raise OidcError(f"the provider's keys cannot be read: {exc}") from exc
                keys = self._keys
            for key in keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise OidcError("the ID token is signed by a key the provider does not publish")

    def finish(self, code: str, state: str, flow: Flow, redirect_uri: str) -> SignedIn:
        """Trade the code for tokens and let the person in with the role the claims give."""
        if not secrets.compare_digest(state.encode(), flow.state.encode()):
            raise OidcError("the sign-in answer does not belong to this browser's sign-in")
        if time.time() - flow.started > FLOW_LIFETIME_S:
            raise OidcError("the sign-in took too long: start again")
        provider = self.provider()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.settings.client_id,
            "code_verifier": flow.verifier,
        }
        auth = (
            (self.settings.client_id, self.settings.client_secret)
            if self.settings.client_secret
            else None
        )
        try:
            resp = httpx.post(provider.token_endpoint, data=form, auth=auth, timeout=HTTP_TIMEOUT)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the provider's token endpoint failed: {exc}") from exc
        if resp.status_code != 200 or not isinstance(body, dict) or "id_token" not in body:
            reason = (
                body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
            )
            raise OidcError(f"the provider refused the code ({resp.status_code}): {reason}")
        claims = self.verify_id_token(str(body["id_token"]), flow.nonce)
        return SignedIn(role_for(claims, self.settings), subject_of(claims))

    def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        key = self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(ALGORITHMS),
                audience=self.settings.client_id,
                issuer=self.provider().issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is not valid: {exc}") from exc
        if not secrets.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcError("the ID token's nonce is not this sign-in's")
        return claims
