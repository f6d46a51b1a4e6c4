"""Who may do what: sites and their keys, operators, visitor session tokens, and erasure."""

from realtime.accounts.operators import Operator, OperatorRegistry
from realtime.accounts.privacy import Privacy
from realtime.accounts.sessions import SessionTokens, new_session_id
from realtime.accounts.sites import Site, SiteRegistry

__all__ = [
    "Operator",
    "OperatorRegistry",
    "Privacy",
    "SessionTokens",
    "Site",
    "SiteRegistry",
    "new_session_id",
]
