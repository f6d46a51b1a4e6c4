"""Keep personal data out of logs: page URLs (the demo's, say) may carry customer e-mails."""

from __future__ import annotations

import logging
import re

EMAIL_IN_TEXT = re.compile(r"[^\s&=/?@%]+(?:@|%40)[^\s&/?#]+")


class RedactEmails(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                EMAIL_IN_TEXT.sub("[email]", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = EMAIL_IN_TEXT.sub("[email]", record.msg)
        return True


def redact_personal_data() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "teaser"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactEmails) for f in logger.filters):
            logger.addFilter(RedactEmails())
