"""Every field of every request body, given every JSON type it does not take, is refused
with 422 `invalid_field` naming that field, never a 500, and nothing is stored. The cases
are generated from the contract's own types, so a new field is tried the day it appears."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec.inspect as types
import pytest

from realtime.contract import (
    DashboardSendRequest,
    EraseRequest,
    EventReport,
    LoginRequest,
    SendRequest,
    SessionRequest,
    WebhookRequest,
    WidgetRequest,
)
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    json_of,
    new_session_id,
    stored_teasers,
)

# One value of each JSON type.
SAMPLES: dict[str, Any] = {
    "string": "x", "integer": 7, "fraction": 7.5, "boolean": True, "null": None,
    "object": {}, "array": [],
}  # fmt: skip


@dataclass(frozen=True)
class Body:
    """A request body the server reads: where it goes, and one good instance of it."""

    method: str
    path: str
    kind: type
    valid: dict[str, Any]
    headers: dict[str, str]
    prefix: str = ""  # where the body sits in what is sent: "[0]." inside a bulk send

    def wrap(self, body: dict[str, Any]) -> Any:
        return [body] if self.prefix else body


def bodies() -> list[Body]:
    send = {"sessionId": new_session_id(), "message": "hi"}
    widget = {"siteId": DEMO_SITE, "sessionId": new_session_id()}
    return [
        Body("PUT", "/api/teaser-messages", SendRequest, send, DEMO_HEADERS),
        Body("PUT", "/api/teaser-messages", SendRequest, send, DEMO_HEADERS, "[0]."),
        Body("POST", "/api/teaser-messages", WidgetRequest, widget, {}),
        Body("POST", "/api/sessions", SessionRequest, {"siteId": DEMO_SITE}, {}),
        Body("POST", "/api/events", EventReport, {**widget, "type": "page_view"}, {}),
        Body("POST", "/api/privacy/erase", EraseRequest, {"email": "a@b.example"}, DEMO_HEADERS),
        Body("POST", "/api/operator/login", LoginRequest,
             {"siteId": DEMO_SITE, "email": "a@b.example", "password": "pw"}, {}),
        Body("POST", "/api/dashboard/teasers", DashboardSendRequest, send, DEMO_HEADERS),
        Body("POST", "/api/webhooks", WebhookRequest, {"url": "https://shop.example/hook"},
             DEMO_HEADERS),
    ]  # fmt: skip


def taken(node: types.Type) -> set[str]:
    """The JSON types a field's declared type accepts."""
    if isinstance(node, types.Metadata):
        return taken(node.type)
    if isinstance(node, types.UnionType):
        return set().union(*(taken(each) for each in node.types))
    if isinstance(node, types.FloatType):
        return {"integer", "fraction"}
    simple = {
        types.StrType: "string", types.LiteralType: "string", types.EnumType: "string",
        types.IntType: "integer", types.BoolType: "boolean", types.NoneType: "null",
        types.StructType: "object", types.DictType: "object", types.ListType: "array",
    }  # fmt: skip
    return {name for kind, name in simple.items() if isinstance(node, kind)}


def fields(kind: type, path: str = "") -> Iterator[tuple[str, types.Type]]:
    """Every field of a body, nested objects' fields too, by their path on the wire."""
    info = types.type_info(kind)
    assert isinstance(info, types.StructType)
    for field in info.fields:
        yield path + field.encode_name, field.type
        nested = [t for t in _members(field.type) if isinstance(t, types.StructType)]
        for struct in nested:
            yield from fields(struct.cls, f"{path}{field.encode_name}.")


def _members(node: types.Type) -> list[types.Type]:
    if isinstance(node, types.UnionType):
        return list(node.types)
    return [node.type if isinstance(node, types.Metadata) else node]


def put_at(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    if not rest:
        return {**body, head: value}
    return {**body, head: put_at(body.get(head) or {}, rest, value)}


def wrong_values(body: Body) -> Iterator[tuple[str, str]]:
    """(field path, JSON type) for every type each of the body's fields refuses."""
    for path, declared in fields(body.kind):
        for json_type in sorted(SAMPLES.keys() - taken(declared)):
            yield path, json_type


def test_the_cases_cover_every_body_and_every_json_type() -> None:
    tried = {(b.kind, json_type) for b in bodies() for _, json_type in wrong_values(b)}
    assert {kind for kind, _ in tried} == {b.kind for b in bodies()}
    assert {json_type for _, json_type in tried} == set(SAMPLES)
    assert sum(len(list(wrong_values(b))) for b in bodies()) > 200


# One server per body, every case of it in turn: a server per case would cost a minute.
@pytest.mark.parametrize("body", bodies(), ids=lambda b: f"{b.method} {b.path} {b.prefix}")
async def test_a_field_of_the_wrong_json_type_is_a_422_naming_it(
    client: httpx.AsyncClient, server: InProcessServer, body: Body
) -> None:
    wrong = []
    for path, json_type in wrong_values(body):
        sent = body.wrap(put_at(body.valid, path, SAMPLES[json_type]))
        response = await client.request(body.method, body.path, json=sent, headers=body.headers)
        error = json_of(response).get("error") or {}
        named = str(error.get("message", "")).startswith(f"{body.prefix}{path}:")
        if (response.status_code, error.get("code"), named) != (422, "invalid_field", True):
            wrong.append(f"{path} as {json_type}: {response.status_code} {response.text}")

    assert wrong == []
    assert await stored_teasers(server) == 0
