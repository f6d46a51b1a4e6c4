"""/openapi.json: the operations' prose around schemas generated from the contract's types."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec

from api.openapi.operations import OPERATIONS, WEBHOOKS, Answer, Operation
from realtime.contract import PATH_PARAMETERS, WEBHOOK_EVENTS, ErrorAnswer

REF = "#/components/schemas/{name}"
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
PATH_SCHEMAS = {
    **{name: msgspec.json.schema(kind) for name, kind in PATH_PARAMETERS.items()},
    # Served from files by StaticFiles, which never looks past its own directory.
    "asset": {"type": "string", "description": "A file of the dashboard's assets."},
}
SECURITY_SCHEMES = {
    "siteKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "The site's API key (with X-Site-ID)."},
    "siteId": {"type": "apiKey", "in": "header", "name": "X-Site-ID",
               "description": "The site the key belongs to."},
    "operatorSession": {"type": "apiKey", "in": "cookie", "name": "teaser_session",
                        "description": "Set by POST /api/operator/login."},
    "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                  "description": "The csrfToken from sign-in; required with the cookie on "
                  "every request that changes something."},
}  # fmt: skip
ERROR_WORDS = {
    400: "Malformed: not JSON, or a key in the URL",
    401: "Unknown site, key or session",
    403: "Origin not allowed, or CSRF token wrong",
    404: "Not found",
    409: "In conflict with what is stored (an Idempotency-Key whose send's messages were "
    "since deleted, a disabled webhook endpoint…): the message says what",
    413: "Body too large",
    422: "A field breaks the contract; the message names it",
    429: "Rate limited; Retry-After says when to come back",
    503: "The database is away for a moment; Retry-After says when to try again",
}


@cache
def openapi_document(version: str) -> dict[str, Any]:
    types = _contract_types()
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Teaser",
            "version": version,
            "description": "Real-time push of short messages into chat-widget bubbles. "
            "The WebSocket protocols are in /asyncapi.json.",
        },
        "paths": _paths(by_type, components),
        "webhooks": _webhooks(by_type),
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _contract_types() -> tuple[Any, ...]:
    found: list[Any] = [ErrorAnswer, *WEBHOOK_EVENTS.values()]
    for operation in OPERATIONS:
        for kind in (operation.body, operation.query, *_answer_types(operation)):
            if kind is not None and kind not in found:
                found.append(kind)
    return tuple(found)


def _answer_types(operation: Operation) -> list[Any]:
    kinds = [each for a in operation.answers for each in (a.body, *(b for _, b in a.also))]
    return [one for kind in kinds for one in (kind if isinstance(kind, tuple) else (kind,))]


def _paths(by_type: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(
            operation, by_type, components
        )
    return paths


def _webhooks(by_type: dict[Any, Any]) -> dict[str, Any]:
    """What Teaser POSTs to a site's endpoints, one entry per event (OpenAPI 3.1)."""
    return {
        name: {
            "post": {
                "summary": WEBHOOKS[name],
                "operationId": "webhook" + "".join(w.title() for w in re.findall(r"[a-z]+", name)),
                "tags": ["webhooks"],
                "description": "Signed as Standard Webhooks: the webhook-id (the same on "
                "every retry), webhook-timestamp and webhook-signature headers "
                "(docs/webhooks.md shows how to verify them).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": by_type[kind]}},
                },
                "responses": {
                    "2XX": {"description": "Received: delivered, not sent again"},
                    "410": {"description": "Gone: the endpoint is disabled at once"},
                    "default": {
                        "description": "Any other answer, or none within 10 s: tried again "
                        "with back-off for 24 hours"
                    },
                },
            }
        }
        for name, kind in WEBHOOK_EVENTS.items()
    }


def _operation(
    operation: Operation, by_type: dict[Any, Any], components: dict[str, Any]
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": _operation_id(operation),
        "tags": [operation.tag],
        "security": operation.security,
        "responses": {
            **{str(a.status): _answer(a, by_type) for a in operation.answers},
            **{str(s): _content(ERROR_WORDS[s], by_type[ErrorAnswer]) for s in operation.errors},
            "default": _content("Any other failure, in the same shape", by_type[ErrorAnswer]),
        },
    }
    if operation.description:
        document["description"] = operation.description
    parameters = [
        *_path_parameters(operation.path),
        *operation.headers,
        *_query_parameters(operation.query, components),
    ]
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": by_type[operation.body]}},
        }
    return document


def _operation_id(operation: Operation) -> str:
    words = re.findall(r"[a-z]+", operation.path.replace("{", "by_").lower())
    return operation.method + "".join(word.title() for word in words)


def _answer(answer: Answer, by_type: dict[Any, Any]) -> dict[str, Any]:
    if answer.body is None:
        return {"description": answer.description}
    media = {answer.media_type: {"schema": _schema(answer.body, by_type)}}
    media |= {kind: {"schema": _schema(body, by_type)} for kind, body in answer.also}
    return {"description": answer.description, "content": media}


def _schema(kind: Any, by_type: dict[Any, Any]) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"oneOf": [by_type[each] for each in kind]}
    return dict(by_type[kind])


def _content(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": PATH_SCHEMAS[name]}
        for name in PATH_PARAMETER.findall(path)
    ]


def _query_parameters(query: Any, components: dict[str, Any]) -> list[dict[str, Any]]:
    """A query type's fields, one parameter each, with the schema its field has."""
    if query is None:
        return []
    schema = components[query.__name__]
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(field)}
        for name, field in schema["properties"].items()
    ]


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A query value is never null, and an empty one counts as absent."""
    outer = {key: field[key] for key in ("description", "default") if field.get(key) is not None}
    inner = {key: value for key, value in field.items() if key not in ("default", "description")}
    branches = inner.get("anyOf", [])
    nullable = {"type": "null"} in branches
    options = [each for each in branches if each != {"type": "null"}] if nullable else [inner]
    return {**outer, "anyOf": [*options, {"const": ""}]}
