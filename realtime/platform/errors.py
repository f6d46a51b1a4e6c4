from __future__ import annotations


class TeaserError(Exception):
    """Root of every error the domain raises on purpose."""

    code = "teaser_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(TeaserError):
    code = "config_error"


class InvalidInput(TeaserError):
    """A request field that does not follow the contract; names the field."""

    code = "invalid_field"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class BadRequest(TeaserError):
    """A request the contract refuses outright, e.g. an API key in a URL."""

    code = "bad_request"


class Unauthorized(TeaserError):
    code = "unauthorized"


class Forbidden(TeaserError):
    code = "forbidden"


class NotFound(TeaserError):
    code = "not_found"


class Conflict(TeaserError):
    """The request can't be answered as asked given what is stored, e.g. a replay whose
    messages were deleted since."""

    code = "conflict"


class StoreUnavailable(TeaserError):
    code = "database_unavailable"


class BrokerUnavailable(TeaserError):
    code = "broker_unavailable"


class RulesError(TeaserError):
    """A rules file that cannot be used; the message names the file and the entry."""

    code = "invalid_rules"


class RateLimited(TeaserError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
