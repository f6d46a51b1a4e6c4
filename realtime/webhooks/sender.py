"""One attempt at one delivery: a signed POST to the checked address, bounded in time and
in what is read back, never following a redirect."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from realtime.webhooks.addresses import UnsafeAddress, resolve

# Enough of a receiver's answer to show why it refused; the rest is never read.
MAX_RESPONSE_BYTES = 4096
SHOWN_RESPONSE_CHARACTERS = 500
USER_AGENT = "Teaser-Webhooks/1"


@dataclass(frozen=True)
class Attempt:
    status_code: int | None  # None: no answer (refused address, connection, timeout)
    latency_ms: int
    error: str | None = None
    response: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks never to be called again."""
        return self.status_code == 410


class Sender:
    def __init__(self, *, timeout: float, production: bool, allow_private: bool) -> None:
        self.timeout = timeout
        self.production = production
        self.allow_private = allow_private
        # trust_env=False: an HTTP(S)_PROXY from the environment would connect on our
        # behalf, to whatever the name resolves to there, past the address check.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
        )

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        started = time.monotonic()
        try:
            # The whole attempt, the name's resolution and a receiver that trickles its
            # answer included, ends within the timeout.
            async with asyncio.timeout(self.timeout):
                return await self._send(url, headers, body, started)
        except UnsafeAddress as exc:
            return Attempt(None, _since(started), exc.reason)
        except TimeoutError:
            return Attempt(None, _since(started), f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt(None, _since(started), _words(exc))

    async def _send(
        self, url: str, headers: dict[str, str], body: bytes, started: float
    ) -> Attempt:
        target = await resolve(url, production=self.production, allow_private=self.allow_private)
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        request = self._client.build_request(
            "POST",
            target.url,
            content=body,
            headers={**headers, "host": target.host, "content-type": "application/json"},
            extensions=extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            answer = await _first_bytes(response)
        finally:
            await response.aclose()
        latency = _since(started)
        text = answer.decode("utf-8", "replace")[:SHOWN_RESPONSE_CHARACTERS]
        if response.is_redirect:
            where = response.headers.get("location", "")[:200]
            return Attempt(response.status_code, latency, f"redirect to {where} not followed", text)
        return Attempt(response.status_code, latency, None, text)

    async def close(self) -> None:
        await self._client.aclose()


async def _first_bytes(response: httpx.Response) -> bytes:
    read = bytearray()
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= MAX_RESPONSE_BYTES:
            break
    return bytes(read[:MAX_RESPONSE_BYTES])


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _words(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
