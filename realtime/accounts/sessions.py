"""Visitor sessions are minted by the server and carry a token: HMAC(site, session) under
the server's secret. Reading a session's messages needs the token, so a bare or guessed
`sess_…` id reads nothing, while operators keep addressing sessions by that id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from realtime.platform.clock import now_ms
from realtime.platform.errors import Unauthorized

ALPHABET = string.ascii_lowercase + string.digits
TOKEN_BYTES = 24


def new_session_id(now: int | None = None) -> str:
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(9))
    return f"sess_{now_ms() if now is None else now}_{suffix}"


class SessionTokens:
    def __init__(self, secret: bytes, *, required: bool) -> None:
        # A key of its own, so a session token can never be mistaken for another signature.
        self._key = hmac.new(secret, b"teaser session token v1", hashlib.sha256).digest()
        self.required = required

    def issue(self, site_id: str, session_id: str) -> str:
        digest = hmac.new(self._key, f"{site_id}\n{session_id}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:TOKEN_BYTES]).decode().rstrip("=")

    def check(self, site_id: str, session_id: str, token: str | None) -> None:
        """A token, when given, must be right; when required, it must be given."""
        if token is None and not self.required:
            return
        expected = self.issue(site_id, session_id).encode()
        given = None if token is None else token.encode("utf-8", "surrogatepass")
        if given is None or not hmac.compare_digest(given, expected):
            raise Unauthorized(
                "this session needs the token issued with it (POST /api/sessions)",
                code="invalid_session_token",
            )
