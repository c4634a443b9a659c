"""API keys: which requests need one, whose key it is, and which keys may read the books.

With no `keys` in the config the gateway is open, as before. With any, every path needs a known key except the
health checks, the API description and the dashboard's static files. The books (the dashboard, /api/stats,
/metrics) need an admin key. A key comes as `Authorization: Bearer <key>` (OpenAI's SDK sends that) or, so that a
browser can open the dashboard, as the password of HTTP Basic auth: the books answer a request without a key with
`WWW-Authenticate: Basic`, and the browser asks for it and then sends it with every fetch of the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.errors import GatewayError, PermissionDenied, Unauthorized
from router.policy import ApiKey

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
PUBLIC_PREFIXES = ("/static/",)
BOOKS_PREFIXES = ("/dashboard", "/api/", "/metrics")
STATE_KEY = "api_key"  # where the front leaves the checked key, in the ASGI scope's state


def presented_key(authorization: str) -> str | None:
    """The key in an Authorization header: a bearer token, or Basic auth's password (its user name is ignored)."""
    scheme, _, cred = authorization.strip().partition(" ")
    scheme, cred = scheme.lower(), cred.strip()
    if scheme == "bearer":
        return cred or None
    if scheme == "basic":
        try:
            _user, _, password = base64.b64decode(cred, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ledger_id(sha256_hex: str) -> str:
    """How the ledger and the dashboard name a key: the start of its SHA-256, which is the start of its entry."""
    return "key-" + sha256_hex[:16]


class Refused(Exception):
    """A request the gate turns away: the error to answer with, and the headers that go with it."""

    def __init__(self, error: GatewayError, headers: dict[str, str]) -> None:
        super().__init__(error.message)
        self.error, self.headers = error, headers


class Gate:
    def __init__(self, keys: Sequence[ApiKey]) -> None:
        # Looked up by the key's SHA-256: the lookup's timing depends on the digest, which a caller cannot steer
        # towards a real key's, so it reveals nothing about the keys (no constant-time compare needed).
        self._by_digest = {k.sha256: k for k in keys}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def admit(self, path: str, authorization: str) -> ApiKey | None:
        """The caller's key (None on an open path); raises Refused if the request may not go on."""
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        books = path.startswith(BOOKS_PREFIXES)
        # A browser shows its own login prompt only for a Basic challenge; API clients are told to send a bearer.
        challenge = {"www-authenticate": 'Basic realm="tiergate", charset="UTF-8"' if books else "Bearer"}
        key = presented_key(authorization)
        if key is None:
            msg = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            raise Refused(Unauthorized(msg, None, "invalid_api_key"), challenge)
        found = self._by_digest.get(digest(key))
        if found is None:
            shown = f"{key[:3]}...{key[-4:]}" if len(key) > 10 else "..."
            raise Refused(Unauthorized(f"Incorrect API key provided: {shown}.", None, "invalid_api_key"), challenge)
        if books and not found.admin:
            msg = f"The key '{found.name}' may call the API but not read the dashboard, /api/stats or /metrics."
            raise Refused(PermissionDenied(msg, None, "not_admin"), {})
        return found


def checked_key(scope: Mapping[str, Any]) -> ApiKey | None:
    """The key the front checked for this request (None when the config has no keys, or on an open path)."""
    key: ApiKey | None = scope.get("state", {}).get(STATE_KEY)
    return key


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    """One header of an ASGI scope, decoded as Latin-1 (as HTTP/1.1 defines bytes in headers); "" if absent."""
    return next((v.decode("latin-1") for k, v in headers if k.lower() == name), "")
