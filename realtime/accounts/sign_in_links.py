"""One-time sign-in links, for development: a server in dev mode prints one for its demo
operator at every start, as Jupyter prints its token, so signing in takes a click. A link
signs in once, within minutes; only the SHA-256 of its token is stored. Production never
issues one (the runtime and the `teaser` command refuse, and the route answers 404)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.clock import Clock, now_ms
from realtime.platform.tables import operator_sign_in_links

SIGN_IN_LINK_TTL_MS = 15 * 60_000
SIGN_IN_LINK_PATH = "/dashboard/sign-in"
# The one logger whose lines may name an e-mail address and carry a token: a dev server's
# lines on how to sign in (api/logs.py leaves them unredacted; docs/guarantees.md says so).
DEV_SIGN_IN_LOGGER = "teaser.dev_sign_in"
MAX_TOKEN_LENGTH = 128  # a token is 43 characters; anything longer is no token


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SignInLinks:
    def __init__(
        self, engine: AsyncEngine, *, clock: Clock = now_ms, ttl_ms: int = SIGN_IN_LINK_TTL_MS
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_ms = ttl_ms

    async def issue(self, operator_id: int) -> str:
        """A new link's token for the operator; links that have expired go now."""
        token, now = secrets.token_urlsafe(32), self.clock()
        links = operator_sign_in_links
        async with self.engine.begin() as connection:
            await connection.execute(delete(links).where(links.c.expires_at <= now))
            await connection.execute(
                insert(links).values(
                    id=_key(token), operator_id=operator_id, expires_at=now + self.ttl_ms
                )
            )
        return token

    async def redeem(self, token: str) -> int | None:
        """The operator a live link names, once: the row goes as it is read, so two clicks
        (or two workers) can't both sign in with it. None for a used, expired or made-up one."""
        if not 0 < len(token) <= MAX_TOKEN_LENGTH:
            return None
        links = operator_sign_in_links
        statement = (
            delete(links)
            .where(links.c.id == _key(token), links.c.expires_at > self.clock())
            .returning(links.c.operator_id)
        )
        async with self.engine.begin() as connection:
            operator_id = (await connection.execute(statement)).scalar()
        return None if operator_id is None else int(operator_id)


def sign_in_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{SIGN_IN_LINK_PATH}?token={token}"


def local_base_url(environ: Mapping[str, str] = os.environ) -> str:
    """Where this server is reached from its own machine, for the dev-mode links: the
    HOST and PORT that `teaser serve` listens on (it exports what it was given)."""
    host = environ.get("HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # listening everywhere: loopback is one of them
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{environ.get('PORT') or '8000'}"
