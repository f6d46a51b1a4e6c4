"""PUT /api/teaser-messages: the contract, and every way it refuses bad input without storing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support import DEMO_HEADERS, InProcessServer, json_of, new_session_id, stored_teasers

SEED_EXAMPLE = (
    '{"sessionId": "sess_1758648278890_cy68t5ni7", "message": "🎉 Special offer just for you! '
    '20% off chairs today!", "priority": "manual", "expiresIn": 300000}'
)


async def test_the_seed_curl_example_works_verbatim(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/teaser-messages",
        content=SEED_EXAMPLE.encode(),
        headers={"Content-Type": "application/json", **DEMO_HEADERS},
    )

    assert response.status_code == 201
    body = json_of(response)
    assert body["sessionId"] == "sess_1758648278890_cy68t5ni7"
    assert body["siteId"] == "woodstock_outlet"
    assert body["message"] == "🎉 Special offer just for you! 20% off chairs today!"
    assert body["priority"] == "manual"
    assert body["status"] == "pending"
    assert body["id"].startswith("tm_")
    assert set(body) == {
        "id",
        "sessionId",
        "siteId",
        "message",
        "priority",
        "createdAt",
        "expiresAt",
        "seq",
        "status",
    }


async def test_defaults_are_manual_priority_and_five_minutes(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": new_session_id(), "message": "hi"},
    )

    sent = json_of(response)
    lifetime = datetime.fromisoformat(sent["expiresAt"]) - datetime.fromisoformat(sent["createdAt"])
    assert sent["priority"] == "manual"
    assert lifetime.total_seconds() == 300


async def test_a_bulk_send_stores_every_message_or_none(
    client: httpx.AsyncClient, server: InProcessServer
) -> None:
    session = new_session_id()
    good = [{"sessionId": session, "message": f"m{i}"} for i in range(100)]

    created = await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=good)
    refused = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json=[*good[:5], {"sessionId": session, "message": ""}],
    )

    assert created.status_code == 201
    assert [m["message"] for m in json_of(created)["messages"]] == [f"m{i}" for i in range(100)]
    assert refused.status_code == 422
    assert json_of(refused)["error"]["message"].startswith("[5].message")
    assert await stored_teasers(server) == 100


async def test_a_message_is_stored_as_given_text(client: httpx.AsyncClient) -> None:
    text = "<img src=x onerror=alert(1)> & 'quotes' \"double\" 🪑"
    response = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": new_session_id(), "message": text},
    )
    assert json_of(response)["message"] == text


VALID = {"sessionId": "sess_1758648278890_cy68t5ni7", "message": "hi"}
AUTH_CASES: list[tuple[str, dict[str, str], str]] = [
    ("no headers", {}, "missing_credentials"),
    ("no key", {"X-Site-ID": "woodstock_outlet"}, "missing_credentials"),
    ("no site", {"X-API-Key": "woodstock_rt_key_2024"}, "missing_credentials"),
    ("wrong key", {"X-API-Key": "nope", "X-Site-ID": "woodstock_outlet"}, "invalid_credentials"),
    (
        "unknown site",
        {"X-API-Key": "woodstock_rt_key_2024", "X-Site-ID": "no_such_site"},
        "invalid_credentials",
    ),
    (
        "oversized site id",
        {"X-API-Key": "woodstock_rt_key_2024", "X-Site-ID": "a" * 10_000},
        "invalid_credentials",
    ),
]


@pytest.mark.parametrize(
    "headers,code", [c[1:] for c in AUTH_CASES], ids=[c[0] for c in AUTH_CASES]
)
async def test_a_send_without_valid_credentials_is_401_and_stores_nothing(
    client: httpx.AsyncClient, server: InProcessServer, headers: dict[str, str], code: str
) -> None:
    response = await client.put("/api/teaser-messages", headers=headers, json=VALID)

    assert response.status_code == 401
    assert json_of(response)["error"]["code"] == code
    assert await stored_teasers(server) == 0


def body(**changes: Any) -> dict[str, Any]:
    return {**VALID, **changes}


FIELD_CASES: list[tuple[str, Any, str]] = [
    ("empty message", body(message=""), "message"),
    ("blank message", body(message="   "), "message"),
    ("message over 500 characters", body(message="x" * 501), "message"),
    ("message not a string", body(message=42), "message"),
    ("message with NUL", body(message="a\u0000b"), "message"),
    ("missing message", {"sessionId": "sess_1"}, "message"),
    ("expiresIn below 1 s", body(expiresIn=999), "expiresIn"),
    ("expiresIn above a day", body(expiresIn=86_400_001), "expiresIn"),
    ("expiresIn negative", body(expiresIn=-5), "expiresIn"),
    ("expiresIn zero", body(expiresIn=0), "expiresIn"),
    ("expiresIn huge", body(expiresIn=1e18), "expiresIn"),
    ("expiresIn as string", body(expiresIn="5000"), "expiresIn"),
    ("expiresIn fractional", body(expiresIn=1500.5), "expiresIn"),
    ("expiresIn boolean", body(expiresIn=True), "expiresIn"),
    ("unknown priority", body(priority="urgent"), "priority"),
    ("missing sessionId", {"message": "hi"}, "sessionId"),
    ("sessionId with spaces", body(sessionId="sess 1"), "sessionId"),
    ("sessionId path-like", body(sessionId="../../etc/passwd"), "sessionId"),
    ("sessionId too long", body(sessionId="s" * 129), "sessionId"),
    ("sessionId not a string", body(sessionId=123), "sessionId"),
    ("body is a string", "hello", "body"),
    ("body is an empty list", [], "body"),
]


@pytest.mark.parametrize(
    "payload,field", [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
async def test_an_invalid_field_is_422_naming_it_and_stores_nothing(
    client: httpx.AsyncClient, server: InProcessServer, payload: Any, field: str
) -> None:
    response = await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=payload)

    assert response.status_code == 422
    error = json_of(response)["error"]
    assert error["code"] == "invalid_field"
    assert error["message"].startswith(field + ":")
    assert await stored_teasers(server) == 0


async def test_the_message_limit_counts_characters_not_bytes(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/teaser-messages", headers=DEMO_HEADERS, json=body(message="🎉" * 500)
    )
    assert response.status_code == 201


RAW_CASES: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"sessionId": "s1", "message": ', 400, "malformed_json"),
    ("empty body", b"", 400, "malformed_json"),
    (
        "NaN is not JSON",
        b'{"sessionId": "s1", "message": "x", "expiresIn": NaN}',
        400,
        "malformed_json",
    ),
    ("invalid UTF-8", b'{"sessionId": "s1", "message": "\xff\xfe"}', 400, "malformed_json"),
    ("lone surrogate", b'{"sessionId": "s1", "message": "\\ud800"}', 400, "malformed_json"),
    (
        "send body over 1 MiB",
        b'{"sessionId": "s1", "message": "' + b"x" * 1_100_000 + b'"}',
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    "raw,status,code", [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
async def test_an_unreadable_body_is_refused_with_json_and_stores_nothing(
    client: httpx.AsyncClient, server: InProcessServer, raw: bytes, status: int, code: str
) -> None:
    response = await client.put(
        "/api/teaser-messages",
        content=raw,
        headers={"Content-Type": "application/json", **DEMO_HEADERS},
    )

    assert response.status_code == status
    assert json_of(response)["error"]["code"] == code
    assert await stored_teasers(server) == 0


async def test_a_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, server: InProcessServer
) -> None:
    async def chunks(kib: int):  # type: ignore[no-untyped-def]
        for _ in range(kib):
            yield b"x" * 1024

    send = await client.put("/api/teaser-messages", content=chunks(1100), headers=DEMO_HEADERS)
    poll = await client.post("/api/teaser-messages", content=chunks(20))

    assert (send.status_code, poll.status_code) == (413, 413)
    assert json_of(send)["error"]["code"] == "payload_too_large"
    assert "16384 bytes" in json_of(poll)["error"]["message"]
    assert await stored_teasers(server) == 0


async def test_public_endpoints_refuse_bodies_over_16_kib_before_reading_them(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"sessionId": "s1", "siteId": "woodstock_outlet", "x": "' + b"x" * 17_000 + b'"}'
    for path in ("/api/teaser-messages", "/api/events", "/api/sessions"):
        response = await client.post(path, content=big)
        assert (response.status_code, json_of(response)["error"]["code"]) == (
            413,
            "payload_too_large",
        )


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/nothing-here")
    wrong_method = await client.delete("/api/teaser-messages")

    assert (missing.status_code, json_of(missing)["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, json_of(wrong_method)["error"]["code"]) == (
        405,
        "method_not_allowed",
    )


async def test_a_teasers_status_is_readable_by_its_site_only(client: httpx.AsyncClient) -> None:
    sent = json_of(await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=VALID))

    mine = await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS)
    unknown = await client.get("/api/teaser-messages/tm_nope", headers=DEMO_HEADERS)
    anonymous = await client.get(f"/api/teaser-messages/{sent['id']}")

    assert json_of(mine)["status"] == "pending" and json_of(mine)["deliveredVia"] is None
    assert (unknown.status_code, json_of(unknown)["error"]["code"]) == (404, "message_not_found")
    assert anonymous.status_code == 401
