"""Who may do what: sites and their keys, operators and their sessions and sign-in limits,
visitor session tokens, and erasure."""

from realtime.accounts.operator_sessions import (
    OPERATOR_SESSION_TTL_MS,
    OperatorSession,
    OperatorSessions,
)
from realtime.accounts.operators import Operator, OperatorRegistry
from realtime.accounts.privacy import Privacy
from realtime.accounts.revocations import VisitorRevocations
from realtime.accounts.sessions import TOKEN_LIFETIME_MS, SessionTokens, new_session_id
from realtime.accounts.sign_in_limits import Budget, SignInLimits
from realtime.accounts.sites import Site, SiteRegistry

__all__ = [
    "OPERATOR_SESSION_TTL_MS",
    "TOKEN_LIFETIME_MS",
    "Budget",
    "Operator",
    "OperatorRegistry",
    "OperatorSession",
    "OperatorSessions",
    "Privacy",
    "SessionTokens",
    "SignInLimits",
    "Site",
    "SiteRegistry",
    "VisitorRevocations",
    "new_session_id",
]
