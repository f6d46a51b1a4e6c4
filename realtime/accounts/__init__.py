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
from realtime.accounts.sign_in_links import (
    DEV_SIGN_IN_LOGGER,
    SIGN_IN_LINK_PATH,
    SIGN_IN_LINK_TTL_MS,
    SignInLinks,
    local_base_url,
    sign_in_url,
)
from realtime.accounts.sites import Site, SiteRegistry

__all__ = [
    "DEV_SIGN_IN_LOGGER",
    "OPERATOR_SESSION_TTL_MS",
    "SIGN_IN_LINK_PATH",
    "SIGN_IN_LINK_TTL_MS",
    "TOKEN_LIFETIME_MS",
    "Budget",
    "Operator",
    "OperatorRegistry",
    "OperatorSession",
    "OperatorSessions",
    "Privacy",
    "SessionTokens",
    "SignInLimits",
    "SignInLinks",
    "Site",
    "SiteRegistry",
    "VisitorRevocations",
    "local_base_url",
    "new_session_id",
    "sign_in_url",
]
