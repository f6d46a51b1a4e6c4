"""Teaser: the blocking client, on httpx.Client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from teaser_client.calls import Call, Calls
from teaser_client.models import Draft, Message, Priority
from teaser_client.retries import TRANSIENT, Outcome, Retries, Retry

T = TypeVar("T")


class Teaser:
    def __init__(
        self,
        url: str,
        *,
        site_id: str,
        api_key: str,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._calls = Calls(site_id, api_key)
        self._retries = Retries(retries, backoff)
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def send(
        self,
        session_id: str,
        message: str,
        *,
        priority: Priority = "manual",
        expires_in: int | None = None,
        only_on_path: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        draft = Draft(
            session_id=session_id,
            message=message,
            priority=priority,
            expires_in=expires_in,
            only_on_path=only_on_path,
        )
        return self._run(self._calls.send(draft, idempotency_key))

    def send_many(
        self, drafts: Sequence[Draft], *, idempotency_key: str | None = None
    ) -> list[Message]:
        return self._run(self._calls.send_many(drafts, idempotency_key))

    def status(self, message_id: str) -> Message:
        return self._run(self._calls.status(message_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Teaser:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            got: Outcome
            try:
                got = self._http.request(
                    call.method, call.path, headers=call.headers, content=call.body
                )
            except TRANSIENT as exc:
                got = exc
            settled = self._retries.settle(call, attempt, got)
            if not isinstance(settled, Retry):
                return settled
            time.sleep(settled.pause)
            attempt += 1
