"""When to ask again: after no answer or a 5xx, a bounded number of times, with jittered
backoff. Safe for sends because each carries its Idempotency-Key into every attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

import httpx

from teaser_client.calls import Call
from teaser_client.errors import Unreachable

T = TypeVar("T")

# What a retry can cure. Not httpx.TransportError as a whole: an unsupported scheme or a
# malformed request fails the same way every time.
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

Outcome = httpx.Response | httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError


@dataclass(frozen=True)
class Retry:
    pause: float


@dataclass(frozen=True)
class Retries:
    """`retries` more attempts after the first; pauses are full-jitter exponential."""

    retries: int = 2
    backoff: float = 0.25
    max_backoff: float = 4.0

    def settle(self, call: Call[T], attempt: int, got: Outcome) -> T | Retry:
        """The call's answer, or how long to wait before attempt `attempt + 1`."""
        if attempt < self.retries and _worth_retrying(got):
            return Retry(random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt)))
        if isinstance(got, httpx.Response):
            return call.answer(got)
        raise Unreachable(
            f"{call.method} {call.path}: {got!r}", code="unreachable", status=None
        ) from got


def _worth_retrying(got: Outcome) -> bool:
    return not isinstance(got, httpx.Response) or got.status_code >= 500
