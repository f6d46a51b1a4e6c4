"""The identifiers every wing checks (site and session ids, e-mail addresses) and the
characters no stored text may hold."""

from __future__ import annotations

import re

from realtime.platform.errors import InvalidInput

SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
SITE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
# C0 controls other than tab and newline, and DEL: PostgreSQL refuses NUL, the rest
# has no business in a chat bubble.
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_session_id(value: object, field: str = "sessionId") -> str:
    if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
        raise InvalidInput(
            field, "must be 1-128 characters of letters, digits, '_', '.', ':' or '-'"
        )
    return value


def check_site_id(value: object, field: str = "siteId") -> str:
    if not isinstance(value, str) or not SITE_ID.fullmatch(value):
        raise InvalidInput(field, "must be 1-64 characters of a-z, 0-9, '_' or '-'")
    return value
