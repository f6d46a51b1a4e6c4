"""Schemathesis against the /openapi.json of a live server: no operation answers 5xx, every
answer matches its documented status, content type and schema, and invalid input is refused.
Then, precisely, where the schema and the server disagree about what is valid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from api.openapi import DOCUMENT
from tests.support import DEMO_HEADERS, DEMO_SITE, ServerProcess

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


def fuzzed_operations() -> list[tuple[str, GenerationMode]]:
    """Every operation of the served document; invalid input too where there is any to make."""
    cases = []
    for path, methods in DOCUMENT["paths"].items():
        for method, spec in methods.items():
            cases.append((f"{method.upper()} {path}", POSITIVE))
            queried = any(p["in"] == "query" for p in spec.get("parameters", []))
            if "requestBody" in spec or queried:
                cases.append((f"{method.upper()} {path}", NEGATIVE))
    return cases


OPERATIONS = fuzzed_operations()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess({"DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'teaser.db'}"}, folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(live_server: ServerProcess) -> schemathesis.BaseSchema:
    # Widget calls name the demo site, so generated polls and events get past the site check.
    config = schemathesis.Config.from_dict({"parameters": {"body.siteId": DEMO_SITE}})
    return schemathesis.openapi.from_url(f"{live_server.base_url}/openapi.json", config=config)


def operation(api_schema: schemathesis.BaseSchema, label: str) -> APIOperation[Any, Any, Any, Any]:
    found = api_schema.find_operation_by_label(label)
    assert found is not None, f"{label} is not in /openapi.json"
    return found


def test_the_fuzzed_operations_are_all_the_live_schema_has(
    api_schema: schemathesis.BaseSchema,
) -> None:
    labels = {
        result.ok().label for result in api_schema.get_all_operations() if isinstance(result, Ok)
    }
    assert labels == {label for label, _ in OPERATIONS}


@pytest.mark.parametrize("label,mode", OPERATIONS, ids=[f"{lb} {m.value}" for lb, m in OPERATIONS])
def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(
    api_schema: schemathesis.BaseSchema,
    live_server: ServerProcess,
    label: str,
    mode: GenerationMode,
) -> None:
    strategy = operation(api_schema, label).as_strategy(generation_mode=mode, headers=DEMO_HEADERS)

    @given(case=strategy)
    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def call(case: schemathesis.Case[Any]) -> None:
        # The schema is looser than the server about bodies, and the server takes an empty
        # query value as absent: both are pinned down exactly in
        # test_the_schema_and_the_server_agree_on_what_is_valid below.
        excluded: list[schemathesis.CheckFunction] = [positive_data_acceptance]
        if case.method == "GET":
            excluded.append(negative_data_rejection)
        case.call_and_validate(base_url=live_server.base_url, excluded_checks=excluded)

    call()


PUT, POLL, EVENTS = "PUT /api/teaser-messages", "POST /api/teaser-messages", "POST /api/events"
STATS, FEED, EXPORT = "GET /api/stats", "GET /api/events", "GET /api/events/export"
SEND = {"sessionId": "sess_1", "message": "hi"}
WIDGET = {"sessionId": "sess_1", "siteId": DEMO_SITE}
EVENT = {**WIDGET, "type": "page_view", "path": "/"}
ALLOWED_BUT_REFUSED = "SCHEMA: /openapi.json allows this, the server refuses it with 422"
REFUSED_BUT_ACCEPTED = "SCHEMA: /openapi.json forbids this, the server accepts it"
DISAGREEMENTS: list[tuple[str, str, dict[str, str], Any, str]] = [
    # (case, operation, query, body, how they disagree)
    ("whitespace-only message", PUT, {}, {**SEND, "message": "   "}, ALLOWED_BUT_REFUSED),
    ("message with a control character", PUT, {}, {**SEND, "message": "a\u0007b"},
     ALLOWED_BUT_REFUSED),
    ("message of 501 characters", PUT, {}, {**SEND, "message": "x" * 501}, ALLOWED_BUT_REFUSED),
    ("poll path without a leading slash", POLL, {}, {**WIDGET, "path": "chairs"},
     ALLOWED_BUT_REFUSED),
    ("event path without a leading slash", EVENTS, {}, {**EVENT, "path": "chairs"},
     ALLOWED_BUT_REFUSED),
    ("event utm with another key", EVENTS, {}, {**EVENT, "utm": {"gclid": "x"}},
     ALLOWED_BUT_REFUSED),
    ("event utm value of 201 characters", EVENTS, {}, {**EVENT, "utm": {"utm_source": "x" * 201}},
     ALLOWED_BUT_REFUSED),
    ("event e-mail that is no address", EVENTS, {}, {**EVENT, "customerEmail": "nobody"},
     ALLOWED_BUT_REFUSED),
    ("event ts of 41 characters", EVENTS, {}, {**EVENT, "ts": "1" * 41}, ALLOWED_BUT_REFUSED),
    ("event time zone that does not exist", EVENTS, {}, {**EVENT, "timeZone": "Mars/Olympus"},
     ALLOWED_BUT_REFUSED),
    ("event teaserId of 65 characters", EVENTS, {}, {**EVENT, "teaserId": "t" * 65},
     ALLOWED_BUT_REFUSED),
    ("event value of 1e12", EVENTS, {}, {**EVENT, "value": 1e12}, ALLOWED_BUT_REFUSED),
    ("stats since garbage", STATS, {"since": "garbage"}, None, ALLOWED_BUT_REFUSED),
    ("stats empty filter", STATS, {"filter": ""}, None, REFUSED_BUT_ACCEPTED),
    ("feed empty period", FEED, {"period": ""}, None, REFUSED_BUT_ACCEPTED),
    ("export empty filter", EXPORT, {"filter": ""}, None, REFUSED_BUT_ACCEPTED),
]  # fmt: skip


@pytest.mark.parametrize(
    "label,query,body",
    [pytest.param(*c[1:4], id=c[0]) for c in DISAGREEMENTS],
)  # fmt: skip
def test_the_schema_and_the_server_agree_on_what_is_valid(
    api_schema: schemathesis.BaseSchema,
    live_server: ServerProcess,
    label: str,
    query: dict[str, str],
    body: Any,
) -> None:
    found = operation(api_schema, label)
    parameters = {parameter.name: parameter for parameter in found.query}
    schema_valid = all(parameters[name].is_valid(value) for name, value in query.items())
    if body is not None:
        schema_valid &= found.body[0].is_valid(body)
    method, path = label.split(" ", 1)
    url = live_server.base_url + path
    response = httpx.request(method, url, params=query, headers=DEMO_HEADERS, json=body, timeout=10)

    assert response.status_code < 500, response.text
    assert schema_valid == response.is_success, response.text


UNDOCUMENTED: list[tuple[str, str]] = [
    ("POST /api/sessions", "/paths/~1api~1sessions/post"),
    ("POST /api/privacy/erase", "/paths/~1api~1privacy~1erase/post"),
    ("send: onlyOnPath", "/components/schemas/SendRequest/properties/onlyOnPath"),
    ("send: Idempotency-Key header",
     "/paths/~1api~1teaser-messages/put/parameters/name=Idempotency-Key"),
    ("poll: since", "/components/schemas/PollRequest/properties/since"),
    ("poll: token", "/components/schemas/PollRequest/properties/token"),
    ("event: token", "/components/schemas/Event/properties/token"),
    ("teaser: seq", "/components/schemas/Teaser/properties/seq"),
    ("polled teaser: seq", "/components/schemas/PolledTeaser/properties/seq"),
    ("poll answer: recovered", "/paths/~1api~1teaser-messages/post/responses/200/content/"
     "application~1json/schema/properties/recovered"),
]  # fmt: skip


@pytest.mark.parametrize("pointer", [c[1] for c in UNDOCUMENTED], ids=[c[0] for c in UNDOCUMENTED])
def test_the_schema_documents_everything_the_server_reads_and_returns(
    live_server: ServerProcess, pointer: str
) -> None:
    node: Any = httpx.get(f"{live_server.base_url}/openapi.json").json()
    for part in pointer.strip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):  # a list of parameters, picked by name
            node = next((item for item in node if f"name={item['name']}" == part), None)
        else:
            node = node.get(part)
        assert node is not None, f"no {part} in {pointer}"
