"""/openapi.json and /asyncapi.json tell the truth about the server: every route it mounts
is documented, every documented operation answers, every error is an ErrorAnswer, every
reference resolves; and the coverage check itself catches a route nobody documented."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from api.app import routes
from tests.support import DEMO_HEADERS, json_of, new_session_id

CONVERTOR = re.compile(r"\{(\w+):\w+\}")
PARAMETER = re.compile(r"\{(\w+)\}")
# What a static files Mount serves, as the document names it.
ASSET = "{asset}"
# A plausible value for each path parameter; the ids name nothing, so those are 404s.
PLAUSIBLE = {
    "message_id": "tm_01HZZZZZZZZZZZZZZZZZZZZZZZ",
    "asset": "main.js",
    "number": "1",
    "delivery_id": "1",
}
# The router's own 404 (api.errors.CODE_BY_STATUS): the path matched no route at all.
UNMATCHED = "not_found"
SECURITY_SCHEMES = {"siteKey", "siteId", "operatorSession", "csrfToken"}
ERROR_ANSWER = {"$ref": "#/components/schemas/ErrorAnswer"}

Document = dict[str, Any]


def served(mounted: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every HTTP route, and ("websocket", path) of every socket, with
    the paths written as OpenAPI writes them."""
    for route in mounted:
        if isinstance(route, Mount):
            path = prefix + route.path
            if route.routes:
                yield from served(route.routes, path)
            else:
                yield "get", f"{path}/{ASSET}"
        elif isinstance(route, Route):
            path = CONVERTOR.sub(r"{\1}", prefix + route.path)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method.lower(), path
        elif isinstance(route, WebSocketRoute):
            yield "websocket", CONVERTOR.sub(r"{\1}", prefix + route.path)


def undocumented(mounted: Sequence[BaseRoute], openapi: Document, asyncapi: Document) -> list[str]:
    """What the app serves that neither document names."""
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    missing = []
    for method, path in served(mounted):
        if method == "websocket":
            documented = path in addresses
        else:
            documented = method in openapi["paths"].get(path, {})
        if not documented:
            missing.append(f"{method.upper()} {path}")
    return missing


def filled(path: str) -> str:
    """A documented path with each parameter given a plausible value."""
    values = {**PLAUSIBLE, "session_id": new_session_id()}
    return PARAMETER.sub(lambda name: values[name[1]], path)


def operations(openapi: Document) -> Iterator[tuple[str, str, Document]]:
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


async def unanswered(client: httpx.AsyncClient, openapi: Document) -> list[str]:
    """Documented operations no route answers: a 405, a 500, or the router's own 404
    (a route's 404 names what it did not find, e.g. message_not_found)."""
    wrong = []
    for method, path, operation in operations(openapi):
        body: Document | None = {} if "requestBody" in operation else None
        answer = await client.request(method, filled(path), json=body, headers=DEMO_HEADERS)
        code = json_of(answer)["error"]["code"] if answer.status_code == 404 else None
        if answer.status_code in (405, 500) or code == UNMATCHED:
            wrong.append(f"{method.upper()} {path}: {answer.status_code} {code or ''}".strip())
    return wrong


def guarded(operation: Document) -> bool:
    return "requestBody" in operation or bool(operation.get("security"))


def errors_not_error_answers(openapi: Document) -> list[str]:
    """Operations taking a body or a credential whose error answers (4xx, 5xx and the
    default) are missing or not ErrorAnswer."""
    return [
        f"{method.upper()} {path}"
        for method, path, operation in operations(openapi)
        if guarded(operation) and not _errors_are_error_answers(operation.get("responses", {}))
    ]


def _errors_are_error_answers(responses: Document) -> bool:
    errors = [answer for status, answer in responses.items() if status[0] in "45"]
    if not errors or "default" not in responses:
        return False
    return all(_schema(answer) == ERROR_ANSWER for answer in (*errors, responses["default"]))


def _schema(answer: Document) -> Any:
    return answer.get("content", {}).get("application/json", {}).get("schema")


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for each in node:
            yield from references(each)


def resolves(document: Document, reference: str) -> bool:
    """Whether a local JSON pointer (`#/a/b~1c`) names something in the document."""
    if not reference.startswith("#/"):
        return False
    node: Any = document
    for step in reference[2:].split("/"):
        step = step.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or step not in node:
            return False
        node = node[step]
    return True


def dangling(document: Document) -> list[str]:
    return sorted({ref for ref in references(document) if not resolves(document, ref)})


async def documents(client: httpx.AsyncClient) -> tuple[Document, Document]:
    openapi, asyncapi = await client.get("/openapi.json"), await client.get("/asyncapi.json")
    return json_of(openapi), json_of(asyncapi)


# ---- every route is documented -------------------------------------------------------


async def test_every_route_the_app_mounts_is_in_a_document(client: httpx.AsyncClient) -> None:
    openapi, asyncapi = await documents(client)
    assert undocumented(routes(), openapi, asyncapi) == []


def test_the_routes_walk_sees_every_kind_of_route() -> None:
    found = set(served(routes()))
    assert ("put", "/api/teaser-messages") in found
    assert ("get", "/dashboard/assets/{asset}") in found
    assert ("websocket", "/api/dashboard/ws") in found
    assert not any(method == "head" for method, _ in found)


async def test_a_route_nobody_documented_is_reported(client: httpx.AsyncClient) -> None:
    async def endpoint(request: Request) -> Response:
        return Response()

    async def socket(websocket: WebSocket) -> None:
        await websocket.close()

    openapi, asyncapi = await documents(client)
    drifted = [
        *routes(),
        Route("/api/teaser-messages", endpoint, methods=["DELETE"]),
        Mount("/api/admin", routes=[Route("/users/{user_id:int}", endpoint)]),
        WebSocketRoute("/api/secret-ws", socket),
    ]

    assert undocumented(drifted, openapi, asyncapi) == [
        "DELETE /api/teaser-messages",
        "GET /api/admin/users/{user_id}",
        "WEBSOCKET /api/secret-ws",
    ]


# ---- every documented operation answers ----------------------------------------------


async def test_the_routers_own_404_is_the_generic_not_found(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/no-such-route")
    assert (answer.status_code, json_of(answer)["error"]["code"]) == (404, UNMATCHED)


async def test_every_documented_operation_is_answered_by_a_route(
    client: httpx.AsyncClient,
) -> None:
    openapi, _ = await documents(client)
    assert await unanswered(client, openapi) == []


async def test_a_documented_operation_no_route_serves_is_reported(
    client: httpx.AsyncClient,
) -> None:
    planted: Document = {"paths": {"/api/nowhere": {"get": {}}, "/healthz": {"delete": {}}}}
    assert await unanswered(client, planted) == [
        "GET /api/nowhere: 404 not_found",
        "DELETE /healthz: 405",
    ]


# ---- security and errors -------------------------------------------------------------


async def test_the_openapi_document_declares_the_four_ways_to_be_let_in(
    client: httpx.AsyncClient,
) -> None:
    openapi, _ = await documents(client)
    declared = set(openapi["components"]["securitySchemes"])
    used = {
        scheme
        for _, _, operation in operations(openapi)
        for requirement in operation.get("security", [])
        for scheme in requirement
    }
    assert SECURITY_SCHEMES <= declared
    assert used <= declared


async def test_every_guarded_or_body_taking_operation_answers_errors_as_error_answer(
    client: httpx.AsyncClient,
) -> None:
    openapi, _ = await documents(client)
    assert len([op for _, _, op in operations(openapi) if guarded(op)]) > 10
    assert errors_not_error_answers(openapi) == []


def test_an_error_answer_of_another_shape_is_reported() -> None:
    error = {"content": {"application/json": {"schema": ERROR_ANSWER}}}
    bare = {"description": "Unknown key"}
    planted: Document = {
        "paths": {
            "/a": {"post": {"requestBody": {}, "responses": {"422": error, "default": error}}},
            "/b": {"get": {"security": [{"siteKey": []}], "responses": {"default": error}}},
            "/c": {"get": {"security": [{"siteKey": []}], "responses": {"401": bare}}},
            "/d": {"get": {"responses": {"200": bare}}},
        }
    }
    assert errors_not_error_answers(planted) == ["GET /b", "GET /c"]


# ---- the documents themselves ----------------------------------------------------------


async def test_the_asyncapi_document_is_asyncapi_3_with_both_sockets(
    client: httpx.AsyncClient,
) -> None:
    _, asyncapi = await documents(client)
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    assert asyncapi["asyncapi"] == "3.0.0"
    assert addresses == {path for method, path in served(routes()) if method == "websocket"}


async def test_every_reference_in_both_documents_resolves(client: httpx.AsyncClient) -> None:
    openapi, asyncapi = await documents(client)
    assert any(references(openapi)) and any(references(asyncapi))
    assert (dangling(openapi), dangling(asyncapi)) == ([], [])


def test_a_reference_to_nothing_is_reported() -> None:
    document = {
        "components": {"schemas": {"A/B": {}}},
        "x": [{"$ref": "#/components/schemas/A~1B"}, {"$ref": "#/components/schemas/C"}],
        "y": {"$ref": "https://elsewhere.example/schema.json"},
    }
    assert dangling(document) == [
        "#/components/schemas/C",
        "https://elsewhere.example/schema.json",
    ]
