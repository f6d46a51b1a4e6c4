"""GET /openapi.json: the HTTP API as OpenAPI 3.1, written by hand so it says what we mean."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.responses import FastJSONResponse
from api.schemas import MAX_BULK_MESSAGES
from realtime.delivery import MAX_EXPIRES_IN_MS, MIN_EXPIRES_IN_MS, PATH_PATTERN
from realtime.platform import EMAIL, FORBIDDEN_CHARACTERS, SESSION_ID, SITE_ID


def _whole(pattern: re.Pattern[str]) -> str:
    """The domain's own regex, anchored as JSON Schema needs (it searches, never matches)."""
    return f"^(?:{pattern.pattern})$"


TIME = {"type": "string", "format": "date-time"}
CONTROLS = FORBIDDEN_CHARACTERS.pattern.removeprefix("[").removesuffix("]")
NO_CONTROLS = f"^[^{CONTROLS}]*$"
MESSAGE_TEXT = f"^[^{CONTROLS}]*[^{CONTROLS}\\s][^{CONTROLS}]*$"
PAGE_PATH = {"type": "string", "maxLength": 512, "pattern": f"^/[^{CONTROLS}]*$"}
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_VALUE = {"type": "string", "maxLength": 200, "pattern": NO_CONTROLS}
MOMENT = {"type": "string", "pattern": r"^(\d{1,15}|\d{4}-\d{2}-\d{2}([T ][0-9:.+\-Z]*)?)?$"}
SESSION_ID_SCHEMA = {"type": "string", "pattern": _whole(SESSION_ID)}
SITE_ID_SCHEMA = {"type": "string", "pattern": _whole(SITE_ID)}


def _absent_as_null(
    properties: dict[str, dict[str, Any]], required: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """An optional field may also be null: the server has always read null as absent."""
    return {
        name: schema if name in required or _takes_null(schema) else _or_null(schema)
        for name, schema in properties.items()
    }


def _takes_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return isinstance(kind, list) and "null" in kind


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(_ref("Error"), "Error") for status in statuses}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "SendRequest": {
        "type": "object",
        "required": ["sessionId", "message"],
        "properties": {
            "sessionId": SESSION_ID_SCHEMA,
            "message": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "pattern": MESSAGE_TEXT,
                "description": "Plain text, trimmed; at most TEASER_MAX_MESSAGE_LENGTH (500) "
                "characters; no control characters but tab and newline.",
            },
            "onlyOnPath": {
                "type": "string",
                "pattern": _whole(PATH_PATTERN),
                "description": "deliver only on this page, or a prefix ending in *",
            },
            "priority": {"type": "string", "enum": ["manual", "auto"], "default": "manual"},
            "expiresIn": {
                "type": "integer",
                "minimum": MIN_EXPIRES_IN_MS,
                "maximum": MAX_EXPIRES_IN_MS,
                "default": 300000,
            },
        },
    },
    "Teaser": {
        "type": "object",
        "required": [
            "id",
            "sessionId",
            "siteId",
            "message",
            "priority",
            "createdAt",
            "expiresAt",
            "status",
        ],
        "properties": {
            "id": {"type": "string"},
            "sessionId": {"type": "string"},
            "siteId": {"type": "string"},
            "message": {"type": "string"},
            "priority": {"type": "string", "enum": ["manual", "auto"]},
            "createdAt": TIME,
            "expiresAt": TIME,
            "seq": {"type": ["integer", "null"], "minimum": 1},
            "onlyOnPath": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "delivered", "expired"]},
            "deliveredVia": {"type": ["string", "null"], "enum": ["websocket", "poll", None]},
            "deliveredAt": {"anyOf": [TIME, {"type": "null"}]},
        },
    },
    "PollRequest": {
        "type": "object",
        "required": ["sessionId", "siteId"],
        "properties": {
            "sessionId": SESSION_ID_SCHEMA,
            "siteId": SITE_ID_SCHEMA,
            # The server reads null as absent, as it does for token.
            "path": {**PAGE_PATH, "type": ["string", "null"], "description": "null: unknown"},
            "token": {"type": ["string", "null"], "maxLength": 200, "description": "null: none"},
            "since": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": 2**62 - 1,
                "description": "the last seq seen: resend what was missed since",
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["sessionId", "siteId", "type"],
        "properties": _absent_as_null(
            {
                "sessionId": SESSION_ID_SCHEMA,
                "siteId": SITE_ID_SCHEMA,
                "type": {
                    "type": "string",
                    "enum": [
                        "page_view",
                        "time_on_page",
                        "page_leave",
                        "teaser_shown",
                        "teaser_click",
                        "conversion",
                    ],
                },
                "path": PAGE_PATH,
                "url": {"type": "string", "maxLength": 2048, "pattern": NO_CONTROLS},
                "referrer": {"type": "string", "maxLength": 2048, "pattern": NO_CONTROLS},
                "title": {"type": "string", "maxLength": 300, "pattern": NO_CONTROLS},
                "utm": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {key: UTM_VALUE for key in UTM_KEYS},
                },
                "customerId": {
                    "type": ["string", "null"],
                    "maxLength": 128,
                    "pattern": NO_CONTROLS,
                },
                "customerEmail": {
                    "type": ["string", "null"],
                    "maxLength": 254,
                    "pattern": rf"^\s*{EMAIL.pattern}\s*$",
                },
                "secondsOnPage": {"type": "number", "minimum": 0, "maximum": 86400},
                "ts": {"type": "string", "maxLength": 40, "pattern": NO_CONTROLS},
                "timeZone": {
                    "type": "string",
                    "maxLength": 64,
                    "pattern": NO_CONTROLS,
                    "description": "an IANA zone; one this server does not know is ignored",
                },
                "teaserId": {"type": "string", "maxLength": 64, "pattern": NO_CONTROLS},
                "value": {"type": "number", "minimum": 0, "exclusiveMaximum": 1e12},
                "token": {
                    "type": ["string", "null"],
                    "maxLength": 200,
                    "description": "null: none",
                },
            },
            required=("sessionId", "siteId", "type"),
        ),
    },
    "PolledTeaser": {
        "type": "object",
        "required": ["id", "message", "priority", "createdAt", "expiresAt"],
        "properties": {
            "id": {"type": "string"},
            "seq": {"type": ["integer", "null"], "minimum": 1},
            "message": {"type": "string"},
            "priority": {"type": "string", "enum": ["manual", "auto"]},
            "createdAt": TIME,
            "expiresAt": TIME,
        },
    },
}

KEY_HEADERS = [
    {"name": "X-API-Key", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-Site-ID", "in": "header", "required": True, "schema": SITE_ID_SCHEMA},
]

VIEW_PARAMETERS = [
    {
        "name": "filter",
        "in": "query",
        "description": "empty means all",
        "schema": {"type": "string", "enum": ["", "all", "ai", "high_score"]},
    },
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}},
    {
        "name": "period",
        "in": "query",
        "schema": {"type": "string", "enum": ["", "1h", "24h", "7d", "30d", "all"]},
    },
    {
        "name": "since",
        "in": "query",
        "schema": MOMENT,
        "description": "epoch milliseconds or an ISO 8601 time",
    },
    {"name": "until", "in": "query", "schema": MOMENT},
]

PATHS: dict[str, Any] = {
    "/api/teaser-messages": {
        "put": {
            "summary": "Send a teaser to one session (or, with a JSON array, up to "
            f"{MAX_BULK_MESSAGES} at once, all-or-nothing)",
            "parameters": [
                *KEY_HEADERS,
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": "a retry with the same key and body sends nothing new",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _ref("SendRequest"),
                                {
                                    "type": "array",
                                    "items": _ref("SendRequest"),
                                    "minItems": 1,
                                    "maxItems": MAX_BULK_MESSAGES,
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    {
                        "oneOf": [
                            _ref("Teaser"),
                            {
                                "type": "object",
                                "required": ["messages"],
                                "properties": {
                                    "messages": {"type": "array", "items": _ref("Teaser")}
                                },
                            },
                        ]
                    },
                    "Stored; pushed at once to an open socket, else kept for the next poll",
                ),
                **_errors(400, 401, 413, 422, 429),
            },
        },
        "post": {
            "summary": "Poll: take this session's pending teasers (each is returned once)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("PollRequest")}},
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["messages", "pollInterval"],
                        "properties": {
                            "messages": {"type": "array", "items": _ref("PolledTeaser")},
                            "pollInterval": {"type": "integer"},
                            "recovered": {
                                "type": "boolean",
                                "description": "with since: whether it was known",
                            },
                        },
                    },
                    "Pending teasers",
                ),
                **_errors(400, 401, 403, 413, 422, 429),
            },
        },
    },
    "/api/teaser-messages/{message_id}": {
        "get": {
            "summary": "A teaser's live status",
            "parameters": [
                *KEY_HEADERS,
                {
                    "name": "message_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {"200": _json(_ref("Teaser"), "The teaser"), **_errors(400, 401, 404)},
        }
    },
    "/api/events": {
        "get": {
            "summary": "The feed, newest first, a page at a time (operator session or API key)",
            "parameters": [
                *KEY_HEADERS,
                *VIEW_PARAMETERS,
                {"name": "before", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events", "next"],
                        "properties": {
                            "events": {"type": "array"},
                            "next": {"type": ["string", "null"]},
                        },
                    },
                    "A page of the feed",
                ),
                **_errors(400, 401, 422),
            },
        },
        "post": {
            "summary": "Record a visitor event; may send an automatic teaser",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("Event")}},
            },
            "responses": {
                "202": _json(
                    {
                        "type": "object",
                        "required": ["score", "triggered"],
                        "properties": {
                            "score": {"type": "integer"},
                            "triggered": {"type": "boolean"},
                        },
                    },
                    "Stored with the session's score after it",
                ),
                **_errors(400, 401, 403, 413, 422, 429),
            },
        },
    },
    "/api/stats": {
        "get": {
            "summary": "The dashboard's metric cards for a period (operator session or API key)",
            "parameters": [*KEY_HEADERS, *VIEW_PARAMETERS],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": [
                            "totalEvents",
                            "aiTriggers",
                            "activeSessions",
                            "averageScore",
                            "onlineNow",
                        ],
                    },
                    "Metrics of this site",
                ),
                **_errors(400, 401, 422),
            },
        }
    },
    "/api/events/export": {
        "get": {
            "summary": "The feed as a JSON or CSV download, honouring filter and period",
            "parameters": [
                *KEY_HEADERS,
                *VIEW_PARAMETERS,
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["json", "csv"]},
                },
            ],
            "responses": {
                "200": {
                    "description": "The rows",
                    "content": {
                        "application/json": {"schema": {"type": "array"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_errors(400, 401, 422),
            },
        }
    },
    "/api/sessions": {
        "post": {
            "summary": "Open a visitor session: a server-minted id and the token that reads it",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["siteId"],
                            "properties": {"siteId": SITE_ID_SCHEMA},
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["sessionId", "token", "pollInterval"],
                        "properties": {
                            "sessionId": {"type": "string"},
                            "token": {"type": "string"},
                            "pollInterval": {"type": "integer"},
                        },
                    },
                    "The new session",
                ),
                **_errors(400, 401, 403, 413, 422, 429),
            },
        }
    },
    "/api/privacy/erase": {
        "post": {
            "summary": "Delete one person's sessions, events and messages on this site",
            "parameters": KEY_HEADERS,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "email": {"type": ["string", "null"], "maxLength": 254},
                                "customerId": {"type": ["string", "null"], "maxLength": 254},
                            },
                            "anyOf": [{"required": ["email"]}, {"required": ["customerId"]}],
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["sessions", "deleted"],
                        "properties": {
                            "sessions": {"type": "integer"},
                            "deleted": {"type": "object"},
                        },
                    },
                    "What was deleted",
                ),
                **_errors(400, 401, 413, 422, 429),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Database and broker health",
            "responses": {
                "200": _json({"type": "object"}, "ok or degraded"),
                "503": _json({"type": "object"}, "database unreachable"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of this worker",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Teaser",
        "version": "0.1.0",
        "description": "Real-time push of short messages into chat-widget bubbles. "
        "The session WebSocket is GET /api/teaser-ws?sessionId=&siteId=.",
    },
    "paths": PATHS,
    "components": {"schemas": SCHEMAS},
}


async def openapi(request: Request) -> Response:
    return FastJSONResponse(DOCUMENT)
