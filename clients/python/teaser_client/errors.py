"""One root exception, a subclass per kind of refusal, each carrying the server's code."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from teaser_client.models import ErrorBody


class TeaserError(Exception):
    """Root of every error the client raises. `status` is None when no answer came."""

    def __init__(self, message: str, *, code: str, status: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        answer = "no answer" if self.status is None else f"HTTP {self.status}"
        return f"{self.code}: {self.message} ({answer})"


class Unauthorized(TeaserError):
    pass


class Forbidden(TeaserError):
    pass


class NotFound(TeaserError):
    pass


class InvalidInput(TeaserError):
    pass


class RateLimited(TeaserError):
    def __init__(
        self, message: str, *, code: str, status: int | None, retry_after: float | None
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class BadRequest(TeaserError):
    """Any other 4xx: malformed JSON, a body too large, a method not allowed."""


class ServerError(TeaserError):
    """A 5xx that was still there after the last retry."""


class Unreachable(TeaserError):
    """No answer (connection refused, reset, timed out) after the last retry."""


class UnexpectedAnswer(TeaserError):
    """A success whose body is not what the API documents."""


ERROR_BY_STATUS: dict[int, type[TeaserError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: InvalidInput,
    429: RateLimited,
}


def error_from_answer(status: int, body: bytes, headers: Mapping[str, str]) -> TeaserError:
    """The typed exception for a refusal; a body that is not the API's error shape (say, a
    proxy's HTML page) still gives one, with the code the server uses for bare HTTP errors."""
    try:
        detail = msgspec.json.decode(body, type=ErrorBody).error
        code, message = detail.code, detail.message
    except msgspec.DecodeError:
        code, message = "http_error", body[:200].decode(errors="replace") or f"HTTP {status}"
    kind = ERROR_BY_STATUS.get(status, ServerError if status >= 500 else BadRequest)
    if kind is RateLimited:
        return RateLimited(message, code=code, status=status, retry_after=_seconds(headers))
    return kind(message, code=code, status=status)


def _seconds(headers: Mapping[str, str]) -> float | None:
    # The server always sends whole seconds; an HTTP-date form from a proxy is not worth a parser.
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None
