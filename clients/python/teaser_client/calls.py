"""The API as data: each method is a Call (what to ask, how to read the answer) that the sync
and the async client both run, so only the transport differs between them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from teaser_client.errors import UnexpectedAnswer, error_from_answer
from teaser_client.models import Batch, Draft, Message

T = TypeVar("T")

MESSAGES = "/api/teaser-messages"


def _user_agent() -> str:
    # Read from the installed metadata, so the version is written in pyproject.toml only.
    try:
        return f"teaser-client/{version('teaser-client')}"
    except PackageNotFoundError:
        return "teaser-client"


USER_AGENT = _user_agent()

_message = msgspec.json.Decoder(Message)
_batch = msgspec.json.Decoder(Batch)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    headers: dict[str, str]
    # Encoded once: a retry must send the very same bytes, since the server compares a
    # reused Idempotency-Key's body hash and refuses a different one with 422.
    body: bytes | None
    read: Callable[[bytes], T]

    def answer(self, response: httpx.Response) -> T:
        if not response.is_success:
            raise error_from_answer(response.status_code, response.content, response.headers)
        try:
            return self.read(response.content)
        except msgspec.DecodeError as exc:
            status = response.status_code
            raise UnexpectedAnswer(str(exc), code="unexpected_answer", status=status) from None


class Calls:
    """Builds the calls of one site's API key."""

    def __init__(self, site_id: str, api_key: str) -> None:
        self._headers = {"X-Site-ID": site_id, "X-API-Key": api_key, "User-Agent": USER_AGENT}

    def send(self, draft: Draft, idempotency_key: str | None) -> Call[Message]:
        return self._put(_encoder.encode(draft), idempotency_key, _message.decode)

    def send_many(
        self, drafts: Sequence[Draft], idempotency_key: str | None
    ) -> Call[list[Message]]:
        return self._put(_encoder.encode(list(drafts)), idempotency_key, _messages)

    def status(self, message_id: str) -> Call[Message]:
        path = f"{MESSAGES}/{quote(message_id, safe='')}"
        return Call("GET", path, self._headers, None, _message.decode)

    def _put(self, body: bytes, key: str | None, read: Callable[[bytes], T]) -> Call[T]:
        # Every send carries a key, so a retry after a lost answer cannot send twice.
        headers = self._headers | {
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex if key is None else key,
        }
        return Call("PUT", MESSAGES, headers, body, read)


def _messages(body: bytes) -> list[Message]:
    return _batch.decode(body).messages
