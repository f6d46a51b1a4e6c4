"""The CORS headers of a widget endpoint's answer: the same as starlette's MutableHeaders
would leave them (api/cors.py builds them in one pass instead)."""

from __future__ import annotations

import pytest
from starlette.datastructures import MutableHeaders

from api.cors import with_cors

ORIGIN = b"https://shop.example"
JSON = [(b"content-length", b"35"), (b"content-type", b"application/json")]
ANSWERS = {
    "plain": JSON,
    "with a Vary": [*JSON, (b"vary", b"Accept-Encoding")],
    "with two Vary": [(b"vary", b"Accept"), *JSON, (b"vary", b"Cookie")],
    "with CORS headers of its own": [
        (b"access-control-allow-origin", b"*"),
        *JSON,
        (b"access-control-expose-headers", b"X-Other"),
        (b"access-control-allow-origin", b"https://other.example"),
    ],
    "with no headers": [],
}


def through_mutable_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    message = {"type": "http.response.start", "headers": list(headers)}
    mutable = MutableHeaders(scope=message)
    mutable["Access-Control-Allow-Origin"] = ORIGIN.decode("latin-1")
    mutable["Access-Control-Expose-Headers"] = "Retry-After"
    mutable.add_vary_header("Origin")
    return list(message["headers"])


@pytest.mark.parametrize("headers", ANSWERS.values(), ids=ANSWERS.keys())
def test_the_cors_headers_are_what_starlettes_mutable_headers_would_set(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert sorted(with_cors(headers, ORIGIN)) == sorted(through_mutable_headers(headers))


def test_the_origin_goes_back_byte_for_byte() -> None:
    origin = "https://bücher.example".encode("latin-1")
    assert (b"access-control-allow-origin", origin) in with_cors(JSON, origin)
