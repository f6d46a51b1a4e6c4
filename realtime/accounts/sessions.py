"""Visitor sessions are minted by the server and carry a token: when it was issued, and
HMAC(site, session, issued) under the server's secret. Reading a session's messages needs
the token, so a bare or guessed `sess_…` id reads nothing, while operators keep addressing
sessions by that id. A token lives `lifetime_ms` (30 days unless configured), and every
token of a session ends when the session is revoked (see `revocations`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable

from realtime.platform.clock import now_ms
from realtime.platform.errors import Unauthorized

ALPHABET = string.ascii_lowercase + string.digits
TOKEN_BYTES = 24
TOKEN_LIFETIME_MS = 30 * 86_400_000
BASE36 = string.digits + string.ascii_lowercase


def new_session_id(now: int | None = None) -> str:
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(9))
    return f"sess_{now_ms() if now is None else now}_{suffix}"


class SessionTokens:
    def __init__(
        self,
        secret: bytes,
        *,
        required: bool,
        lifetime_ms: int = TOKEN_LIFETIME_MS,
        revoked: Callable[[str, str], bool] = lambda site_id, session_id: False,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        # A key of its own, so a session token can never be mistaken for another signature.
        self._key = hmac.new(secret, b"teaser session token v2", hashlib.sha256).digest()
        self.required = required
        self.lifetime_ms = lifetime_ms
        self._revoked = revoked
        self._clock = clock

    def issue(self, site_id: str, session_id: str, now: int | None = None) -> str:
        """`<issued, in base 36 seconds>.<signature>`: short, URL-safe, and self-dating."""
        issued = _base36((self._clock() if now is None else now) // 1000)
        return f"{issued}.{self._sign(site_id, session_id, issued)}"

    def check(self, site_id: str, session_id: str, token: str | None) -> None:
        """A revoked session is refused, token or not. Otherwise a token, when given, must
        be right and live; when required, it must be given."""
        if token is None and not self.required and not self._revoked(site_id, session_id):
            return
        if token is None or not self._good(site_id, session_id, token):
            raise Unauthorized(
                "this session needs a live token issued with it (POST /api/sessions)",
                code="invalid_session_token",
            )

    def _good(self, site_id: str, session_id: str, token: str) -> bool:
        issued, _, signature = token.partition(".")
        if not (issued.isascii() and issued.isalnum() and len(issued) <= 8):
            return False
        expected = self._sign(site_id, session_id, issued).encode()
        if not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), expected):
            return False
        age = self._clock() - int(issued, 36) * 1000
        # A token from a little ahead is a clock step between workers, not a forgery.
        return -60_000 <= age < self.lifetime_ms and not self._revoked(site_id, session_id)

    def _sign(self, site_id: str, session_id: str, issued: str) -> str:
        body = f"{site_id}\n{session_id}\n{issued}".encode()
        digest = hmac.new(self._key, body, hashlib.sha256).digest()[:TOKEN_BYTES]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = BASE36[digit] + digits
        if number == 0:
            return digits
