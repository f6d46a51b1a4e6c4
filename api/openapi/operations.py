"""Every HTTP route, in words: what it does, what it takes and answers (by contract type),
who may call it. The only hand-written part of /openapi.json; the schemas are generated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.pages import MOVED_PAGES
from realtime.contract import (
    ERASE_BODY,
    BulkSent,
    ConversionReport,
    DashboardSendRequest,
    Erased,
    EventAccepted,
    EventReport,
    ExportQuery,
    FeedItem,
    FeedPage,
    FeedQuery,
    Health,
    Journey,
    Liveness,
    LoginRequest,
    LogoutQuery,
    PollAnswer,
    PollRequest,
    Readiness,
    SendBody,
    SentTeaser,
    SessionOpened,
    SessionRequest,
    SignedIn,
    SignInLinkQuery,
    Stats,
    TeaserState,
    ViewQuery,
    WebhookCreated,
    WebhookDeliveries,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpoints,
    WebhookRequest,
    WebhookSecret,
    WebhookTestQueued,
    WordingChoices,
)

# Who may call: the site's key pair; an operator's cookie (plus the CSRF header when it
# changes something); or nobody in particular (the widget's public endpoints, whose
# page Origin is checked against the site's allowed origins).
Security = list[dict[str, list[str]]]
SITE_KEY: Security = [{"siteKey": [], "siteId": []}]
OPERATOR_READ: Security = [{"operatorSession": []}, *SITE_KEY]
OPERATOR_WRITE: Security = [{"operatorSession": [], "csrfToken": []}, *SITE_KEY]
PUBLIC: Security = []


@dataclass(frozen=True)
class Answer:
    status: int
    description: str
    body: Any = None  # a contract type, a tuple of them (one of), or None for no body
    media_type: str = "application/json"
    also: tuple[tuple[str, Any], ...] = ()  # other media types it may come as


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    body: Any = None
    query: Any = None
    security: list[dict[str, list[str]]] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    headers: tuple[dict[str, Any], ...] = ()
    description: str = ""


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "A retry with the same key and body sends nothing new; the first answer "
    "comes back with Idempotent-Replayed: true.",
}
# Every operation that reads or writes the store may meet it away: a 503 with Retry-After.
WIDGET_ERRORS = (400, 401, 403, 413, 422, 429, 503)
KEY_ERRORS = (400, 401, 413, 422, 429, 503)
DASHBOARD_ERRORS = (400, 401, 403, 422, 503)
WEBHOOK_ERRORS = (400, 401, 403, 404, 413, 422, 503)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "put",
        "/api/teaser-messages",
        "Send a teaser to one session, or up to 1000 at once",
        "send",
        (
            Answer(
                201,
                "Stored; pushed at once to an open socket, else kept for the next "
                "poll. A JSON array gets {messages: [...]}, in its order.",
                (SentTeaser, BulkSent),
            ),
        ),
        body=SendBody,
        security=SITE_KEY,
        errors=(*KEY_ERRORS, 409),
        headers=(IDEMPOTENCY_KEY,),
        description="A JSON array is all or nothing: one refused message refuses the send, "
        "and the error names it by its place (`[5].message: …`).",
    ),
    Operation(
        "post",
        "/api/teaser-messages",
        "Poll: take this session's pending teasers (once each)",
        "widget",
        (Answer(200, "The teasers for this page, oldest first", PollAnswer),),
        body=PollRequest,
        security=PUBLIC,
        errors=WIDGET_ERRORS,
        description="The widget's fallback when WebSockets fail. With `wait`, a poll that "
        "finds nothing is held until a teaser for the session is there, or the wait is over "
        "(long-polling; the answer's `wait` says what was granted; poll again at once). "
        "Without it, or with `wait` 0 in the answer, poll every `pollInterval` (8 s). With "
        "`since`, teasers already delivered after that seq are sent again (recovery).",
    ),
    Operation(
        "get",
        "/api/teaser-messages/{message_id}",
        "A teaser's live status",
        "send",
        (Answer(200, "The teaser and what became of it", TeaserState),),
        security=SITE_KEY,
        errors=(400, 401, 404),
    ),
    Operation(
        "post",
        "/api/sessions",
        "Open a visitor session: a server-minted id and its token",
        "widget",
        (Answer(201, "The new session", SessionOpened),),
        body=SessionRequest,
        security=PUBLIC,
        errors=WIDGET_ERRORS,
        description="The token lives 30 days; after that, or once the session is ended, "
        "the widget is answered 401 `invalid_session_token` and opens a new session.",
    ),
    Operation(
        "delete",
        "/api/sessions/{session_id}",
        "End a visitor session: every token it was given stops working",
        "widget",
        (Answer(204, "Ended (also when it was already ended, or never existed)"),),
        security=SITE_KEY,
        errors=(400, 401, 422),
        description="For a visitor who should not be reached any more. Workers learn of it "
        "within 2 s; the widget opens a new session on its next poll or reconnect.",
    ),
    Operation(
        "post",
        "/api/events",
        "Record a visitor event; may send an automatic teaser",
        "widget",
        (
            Answer(
                202, "Recorded; the session's score, and whether a teaser went out", EventAccepted
            ),
        ),
        body=EventReport,
        security=PUBLIC,
        errors=WIDGET_ERRORS,
        description="Any content type is read as JSON, so a page leave can come as a "
        "text/plain beacon. A `track` or `goal` event must name an [[event]] the site's "
        "rules declare (else 422 naming `name`), with props within its max_props_bytes "
        "(else 422 naming `props`) and at most its max_per_minute per session (else 429).",
    ),
    Operation(
        "post",
        "/api/events/server",
        "Record an event from the shop's backend, with the site's key",
        "widget",
        (
            Answer(
                202, "Recorded; the session's score, and whether a teaser went out", EventAccepted
            ),
        ),
        body=EventReport,
        security=SITE_KEY,
        errors=(*KEY_ERRORS, 403, 404),
        description="The same body as POST /api/events, for a purchase the shop confirmed "
        "(`type: goal`) or anything its backend knows. No Origin and no session token: the "
        "key vouches for it, and may send events declared `server_only`. The session must "
        "be one the site already has (404 `session_not_found` otherwise), and `siteId` "
        "the key's site.",
    ),
    Operation(
        "post",
        "/api/privacy/erase",
        "Delete one person's sessions, events and messages",
        "privacy",
        (Answer(200, "What was deleted", Erased),),
        body=ERASE_BODY,
        security=SITE_KEY,
        errors=KEY_ERRORS,
    ),
    *(
        # The site's key, or a signed-in operator of that site (with the CSRF token to write).
        Operation(
            method,
            path,
            summary,
            "webhooks",
            answers,
            security=OPERATOR_READ if method == "get" else OPERATOR_WRITE,
            **extra,
        )
        for method, path, summary, answers, extra in (
            (
                "get",
                "/api/webhooks",
                "The site's webhook endpoints",
                (Answer(200, "Each endpoint, by number", WebhookEndpoints),),
                {"errors": (400, 401, 403, 503)},
            ),
            (
                "post",
                "/api/webhooks",
                "Add a webhook endpoint; its signing secret is answered this once",
                (Answer(201, "The endpoint and its secret (whsec_…)", WebhookCreated),),
                {
                    "body": WebhookRequest,
                    "errors": (*WEBHOOK_ERRORS, 409),
                    "description": "Events reach it from the moment it exists on this "
                    "worker, and on the others within TEASER_SITE_CACHE_TTL (5 s). A site "
                    "has at most 20 endpoints (409 `too_many_endpoints`).",
                },
            ),
            (
                "delete",
                "/api/webhooks/{number}",
                "Remove an endpoint: nothing more is sent to it, and its number is not reused",
                (Answer(204, "Removed; what it still had pending has failed"),),
                {"errors": WEBHOOK_ERRORS},
            ),
            (
                "post",
                "/api/webhooks/{number}/rotate",
                "A new signing secret; the previous one signs beside it for 24 hours",
                (Answer(200, "The new secret, shown this once", WebhookSecret),),
                {"errors": WEBHOOK_ERRORS},
            ),
            (
                "post",
                "/api/webhooks/{number}/enable",
                "Send to a disabled endpoint again",
                (Answer(200, "The endpoint, enabled", WebhookEndpoint),),
                {"errors": WEBHOOK_ERRORS},
            ),
            (
                "post",
                "/api/webhooks/{number}/test",
                "Queue a teaser.test event for this endpoint alone",
                (Answer(202, "Queued; sent within a second", WebhookTestQueued),),
                {"errors": (*WEBHOOK_ERRORS, 409)},
            ),
            (
                "get",
                "/api/webhooks/{number}/deliveries",
                "An endpoint's latest 50 deliveries: status code, latency, attempts",
                (Answer(200, "Newest event first", WebhookDeliveries),),
                {"errors": WEBHOOK_ERRORS},
            ),
            (
                "post",
                "/api/webhooks/{number}/deliveries/{delivery_id}/replay",
                "Send a delivery again (same webhook-id), from its first retry interval",
                (Answer(202, "Queued", WebhookDelivery),),
                {"errors": WEBHOOK_ERRORS},
            ),
        )
    ),
    Operation(
        "post",
        "/api/operator/login",
        "Sign an operator in: sets the session and CSRF cookies",
        "operators",
        (Answer(200, "Signed in", SignedIn),),
        body=LoginRequest,
        security=PUBLIC,
        errors=(400, 401, 403, 413, 422, 429),
    ),
    Operation(
        "post",
        "/api/operator/logout",
        "Sign out: ends this session (or, with everywhere=true, every session of the "
        "operator) and clears the cookies",
        "operators",
        (Answer(204, "Signed out"),),
        query=LogoutQuery,
        security=OPERATOR_WRITE,
        errors=(401, 403, 422),
    ),
    Operation(
        "get",
        "/api/operator/me",
        "Who is signed in, and the CSRF token to send",
        "operators",
        (Answer(200, "The operator, or the site for a key", SignedIn),),
        security=OPERATOR_READ,
        errors=(400, 401),
    ),
    Operation(
        "get",
        "/api/stats",
        "The metric cards for a view",
        "dashboard",
        (Answer(200, "The cards", Stats),),
        query=ViewQuery,
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "get",
        "/api/events",
        "The live feed, newest first, a page at a time",
        "dashboard",
        (Answer(200, "One page", FeedPage),),
        query=FeedQuery,
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "get",
        "/api/events/export",
        "The feed of a view as a JSON or CSV download",
        "dashboard",
        (
            Answer(
                200,
                "Every row of the view, newest first: the feed's items as a JSON array "
                "(format=json), or CSV with one column per field (format=csv)",
                list[FeedItem],
                also=(("text/csv", str),),
            ),
        ),
        query=ExportQuery,
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "get",
        "/api/dashboard/sessions/{session_id}",
        "One session's journey",
        "dashboard",
        (Answer(200, "Who, from where, and every step in order", Journey),),
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "get",
        "/api/dashboard/conversions",
        "Shown → clicked → converted, by group",
        "dashboard",
        (Answer(200, "The funnel", ConversionReport),),
        query=ViewQuery,
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "get",
        "/api/dashboard/sessions/{session_id}/wordings",
        "Every template wording, filled in for one session",
        "dashboard",
        (
            Answer(
                200,
                "Each template's wordings in the rules file's order; a session not stored "
                "yet gets them with no details, so most fall to their fallbacks",
                WordingChoices,
            ),
        ),
        security=OPERATOR_READ,
        errors=DASHBOARD_ERRORS,
    ),
    Operation(
        "post",
        "/api/dashboard/teasers",
        "📨 Send a custom (manual) teaser to one session",
        "dashboard",
        (Answer(201, "Stored and on its way", TeaserState),),
        body=DashboardSendRequest,
        security=OPERATOR_WRITE,
        errors=(*DASHBOARD_ERRORS, 413, 429),
    ),
    Operation(
        "get",
        "/api/dashboard/teasers/{message_id}",
        "A teaser's live status",
        "dashboard",
        (Answer(200, "The teaser and what became of it", TeaserState),),
        security=OPERATOR_READ,
        errors=(*DASHBOARD_ERRORS, 404),
    ),
    Operation(
        "get",
        "/healthz",
        "Database and broker health",
        "service",
        (
            Answer(200, "ok, or degraded (Redis down: polling still delivers)", Health),
            Answer(503, "The database is unreachable", Health),
        ),
    ),
    Operation(
        "get",
        "/livez",
        "Liveness: the worker's event loop answers (for a liveness probe; never the database)",
        "service",
        (Answer(200, "ok", Liveness),),
    ),
    Operation(
        "get",
        "/readyz",
        "Readiness: the database and the broker answer and no SIGTERM has come",
        "service",
        (
            Answer(200, "ready", Readiness),
            Answer(503, "The database or the broker is unreachable, or it drains", Readiness),
        ),
    ),
    Operation(
        "get",
        "/metrics",
        "Prometheus metrics of every worker of this server",
        "service",
        (Answer(200, "Prometheus text format", str, "text/plain"),),
    ),
    Operation(
        "get",
        "/openapi.json",
        "This document",
        "service",
        (Answer(200, "OpenAPI 3.1", dict),),
    ),
    Operation(
        "get",
        "/asyncapi.json",
        "The WebSocket protocols, as AsyncAPI 3",
        "service",
        (Answer(200, "AsyncAPI 3.0", dict),),
    ),
    Operation(
        "get",
        "/widget.js",
        "The widget: one <script> tag embeds it",
        "pages",
        (Answer(200, "JavaScript", str, "application/javascript"),),
    ),
    Operation(
        "get",
        "/demo",
        "A demo shop page with the widget",
        "pages",
        (Answer(200, "HTML", str, "text/html"),),
    ),
    Operation(
        "get",
        "/dashboard",
        "The operator dashboard (signed in), else a redirect to sign in",
        "pages",
        (Answer(200, "HTML", str, "text/html"), Answer(303, "Not signed in: to /dashboard/login")),
    ),
    Operation(
        "get",
        "/dashboard/login",
        "The dashboard's sign-in page",
        "pages",
        (Answer(200, "HTML", str, "text/html"),),
    ),
    Operation(
        "get",
        "/dashboard/assets/{asset}",
        "The dashboard's scripts and styles",
        "pages",
        (Answer(200, "The file", str, "application/octet-stream"),),
        errors=(404,),
    ),
    Operation(
        "get",
        "/dashboard/sign-in",
        "A development server's one-time sign-in link: signed in, on to the dashboard",
        "pages",
        (Answer(303, "Signed in (the session cookies are set): to /dashboard"),),
        query=SignInLinkQuery,
        security=PUBLIC,
        errors=(401, 404, 422),
        description="In dev mode the server prints a link for its demo operator at every "
        "start; it signs in once, within 15 minutes. A used, expired or unknown token is "
        "`401 sign_in_link_expired`; with TEASER_ENV=production the page is `404`.",
    ),
    *(
        Operation(
            "get",
            old,
            f"The hosted system's page, now {new}",
            "pages",
            (Answer(301, f"To {new}, with the query kept"),),
            description="Kept so that a shop moving from the hosted system keeps its links.",
        )
        for old, new in MOVED_PAGES.items()
    ),
)


# /openapi.json's `webhooks`: what each event's POST to an endpoint means (docs/webhooks.md).
WEBHOOKS: dict[str, str] = {
    "teaser.delivered": "A teaser reached its visitor: acked by the widget's socket, or "
    "handed to a poll.",
    "teaser.shown": "The widget showed a teaser (its teaser_shown event).",
    "teaser.clicked": "The visitor clicked a teaser (its teaser_click event).",
    "teaser.converted": "The visitor converted (a conversion event), crediting the teaser "
    "the widget named.",
    "teaser.expired": "A teaser expired before it reached its visitor; reported once, "
    "about TEASER_CLAIM_LEASE_MS + 5 s after it expired.",
    "auto_teaser.sent": "Teaser sent a teaser by itself, with why: the rules and their "
    "points, the reasons and the template.",
    "teaser.test": "Asked for by POST /api/webhooks/{number}/test or `teaser webhook test`.",
}
