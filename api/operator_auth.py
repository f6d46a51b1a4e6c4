"""Operator sign-in for the dashboard, and the one check every dashboard API uses.

A session is a signed, HttpOnly, SameSite cookie holding (operator, issued at, nonce),
and a row on the server (OperatorSessions) that the cookie must still name: signing out,
signing out everywhere, a password reset and removing the operator end it on every worker
at once. Requests that change state from a cookie session must also carry X-CSRF-Token: a
token derived from the session (double submit: it is also in a readable cookie), which a
page on another origin can neither read nor forge. Scripts send the site's X-API-Key and
X-Site-ID instead and need no CSRF token, since nothing sends those headers for them.
Sign-in tries are counted (SignInLimits) before any password is hashed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from api.auth import client_address, own_origin, runtime_of, sending_site
from api.responses import StructResponse
from realtime.accounts import OPERATOR_SESSION_TTL_MS, Operator
from realtime.contract import (
    LoginRequest,
    LogoutQuery,
    OperatorRef,
    SignedIn,
    decode_json,
    from_strings,
)
from realtime.platform import Forbidden, Unauthorized

SESSION_COOKIE = "teaser_session"
CSRF_COOKIE = "teaser_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_MS = OPERATOR_SESSION_TTL_MS
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class SessionToken:
    operator_id: int
    issued_at: int
    nonce: str


@dataclass(frozen=True)
class Principal:
    """Who is asking: an operator of `site_id`, or (operator None) a script with its key."""

    site_id: str
    operator: Operator | None = None
    session: SessionToken | None = None


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        # Keys of their own, so no other signature of this server can pass for a session.
        self._session_key = hmac.new(secret, b"teaser operator session v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"teaser operator csrf v1", hashlib.sha256).digest()

    def issue(self, operator_id: int, now: int) -> tuple[str, SessionToken]:
        token = SessionToken(operator_id, now, secrets.token_urlsafe(16))
        body = f"{token.operator_id}.{token.issued_at}.{token.nonce}"
        return f"{body}.{_mac(self._session_key, body)}", token

    def read(self, cookie: str | None, now: int) -> SessionToken | None:
        """The session in a cookie; None if absent, tampered with, or too old."""
        if not cookie or cookie.count(".") != 3:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, _mac(self._session_key, body)):
            return None
        operator_id, issued_at, nonce = body.split(".")
        if not (
            operator_id.isascii()
            and operator_id.isdigit()
            and issued_at.isascii()
            and issued_at.isdigit()
        ):
            return None
        if not 0 <= now - int(issued_at) < SESSION_TTL_MS:
            return None
        return SessionToken(int(operator_id), int(issued_at), nonce)

    def csrf_token(self, session: SessionToken) -> str:
        return _mac(self._csrf_key, f"{session.operator_id}.{session.issued_at}.{session.nonce}")


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signer_of(connection: HTTPConnection) -> SessionSigner:
    return SessionSigner(runtime_of(connection).secret)


async def session_principal(connection: HTTPConnection) -> Principal | None:
    """The operator whose session cookie came with this request, if it is still good."""
    runtime = runtime_of(connection)
    token = signer_of(connection).read(
        connection.cookies.get(SESSION_COOKIE), runtime.store.clock()
    )
    if token is None:
        return None
    # Read from the database on every request, uncached: a revocation on any worker (or
    # by the `teaser` command) holds at once for the next request everywhere.
    operator = await runtime.operator_sessions.live(token.operator_id, token.nonce)
    if operator is None or token.issued_at < operator.password_changed_at:
        return None
    return Principal(operator.site_id, operator, token)


async def dashboard_principal(connection: HTTPConnection) -> Principal:
    """An operator's session, or the site's API key headers; 401 for neither.

    Key headers win when present, so a script is never mistaken for whoever's cookie it
    carries; a bad key is a 401 even with a good cookie."""
    if "x-api-key" in connection.headers or "x-site-id" in connection.headers:
        return Principal((await sending_site(connection)).id)
    principal = await session_principal(connection)
    if principal is None:
        raise Unauthorized(
            "sign in to the dashboard, or send X-API-Key and X-Site-ID", code="not_signed_in"
        )
    if isinstance(connection, Request) and connection.method in UNSAFE_METHODS:
        check_csrf(connection, principal)
    return principal


def check_csrf(request: Request, principal: Principal) -> None:
    assert principal.session is not None
    check_same_origin(request)
    expected = signer_of(request).csrf_token(principal.session)
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")


def check_same_origin(connection: HTTPConnection) -> None:
    """A browser names the page that makes a request; the dashboard only answers its own."""
    origin = connection.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(connection):
        raise Forbidden(f"origin '{origin}' may not use the dashboard", code="origin_not_allowed")


async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    # Signing in from another site's page would plant that site's session (login CSRF).
    check_same_origin(request)
    asked = decode_json(await request.body(), LoginRequest)
    site_id, email, address = asked.site_id, asked.email.strip().lower(), client_address(request)
    limits = runtime.sign_in_limits
    await limits.check(site_id, email, address)  # before Argon2: a refused try costs no hash
    try:
        operator = await runtime.operators.authenticate(site_id, asked.email, asked.password)
    except Unauthorized:
        await limits.failed(site_id, email, address)
        raise
    await limits.succeeded(site_id, email, address)
    cookie, session = signer_of(request).issue(operator.id, runtime.store.clock())
    await runtime.operator_sessions.open(
        operator.id,
        session.nonce,
        address=address,
        user_agent=request.headers.get("user-agent", ""),
    )
    response = StructResponse(signed_in(request, Principal(site_id, operator, session)))
    set_session_cookies(request, response, cookie, signer_of(request).csrf_token(session))
    return response


async def logout(request: Request) -> Response:
    """Ends this session, or with ?everywhere=true every session of its operator (the
    other browsers, a lost phone, a cookie someone copied)."""
    everywhere = from_strings(request.query_params.multi_items(), LogoutQuery).everywhere
    principal = await session_principal(request)
    if principal is not None:
        check_csrf(request, principal)
        assert principal.operator is not None and principal.session is not None
        sessions = runtime_of(request).operator_sessions
        if everywhere:
            await sessions.revoke_all(principal.operator.id)
        else:
            await sessions.revoke(principal.operator.id, principal.session.nonce)
    elif everywhere:
        # Signing out here is done when there is no session; everywhere needs to know whose.
        raise Unauthorized("sign in to sign out everywhere", code="not_signed_in")
    response = Response(status_code=204)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", samesite="lax")
    return response


async def me(request: Request) -> Response:
    principal = await dashboard_principal(request)
    return StructResponse(signed_in(request, principal))


def signed_in(request: Request, principal: Principal) -> SignedIn:
    operator, session = principal.operator, principal.session
    return SignedIn(
        site_id=principal.site_id,
        operator=None if operator is None else OperatorRef(operator.id, operator.email),
        csrf_token=None if session is None else signer_of(request).csrf_token(session),
        max_message_length=runtime_of(request).settings.max_message_length,
    )


def set_session_cookies(request: Request, response: Response, session: str, csrf: str) -> None:
    """The session cookie and its CSRF twin, as sign-in (the form or a dev link) sets them."""
    secure = request.url.scheme == "https"
    max_age = SESSION_TTL_MS // 1000
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    # Readable by the dashboard's script, which echoes it in X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure, httponly=False, samesite="lax"
    )
