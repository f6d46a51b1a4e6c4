"""/api/webhooks: a site's webhook endpoints and their deliveries, for its key or operator."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import runtime_of
from api.operator_auth import dashboard_principal
from api.responses import StructResponse
from realtime.contract import (
    WebhookCreated,
    WebhookDeliveries,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpoints,
    WebhookRequest,
    WebhookSecret,
    WebhookTestQueued,
    decode_json,
    path_value,
)
from realtime.platform import iso_time


async def _site_id(request: Request) -> str:
    # The same check as every dashboard API: the key headers, or an operator's session
    # cookie (plus X-CSRF-Token to change anything); an operator only reaches their site.
    return (await dashboard_principal(request)).site_id


def _number(request: Request) -> int:
    return int(path_value(request.path_params, "number"))


async def list_endpoints(request: Request) -> Response:
    site_id = await _site_id(request)
    found = await runtime_of(request).webhooks.list_endpoints(site_id)
    return StructResponse(WebhookEndpoints([WebhookEndpoint.of(each) for each in found]))


async def add_endpoint(request: Request) -> Response:
    site_id = await _site_id(request)
    body = decode_json(await request.body(), WebhookRequest)
    endpoint, secret = await runtime_of(request).webhooks.add(site_id, body.url, body.events)
    return StructResponse(WebhookCreated(WebhookEndpoint.of(endpoint), secret), status_code=201)


async def remove_endpoint(request: Request) -> Response:
    site_id = await _site_id(request)
    await runtime_of(request).webhooks.remove(site_id, _number(request))
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    site_id = await _site_id(request)
    number = _number(request)
    rotated = await runtime_of(request).webhooks.rotate(site_id, number)
    return StructResponse(WebhookSecret(number, rotated.secret, iso_time(rotated.previous_until)))


async def enable_endpoint(request: Request) -> Response:
    site_id = await _site_id(request)
    endpoint = await runtime_of(request).webhooks.enable(site_id, _number(request))
    return StructResponse(WebhookEndpoint.of(endpoint))


async def send_test(request: Request) -> Response:
    site_id = await _site_id(request)
    webhook_id = await runtime_of(request).webhooks.queue_test(site_id, _number(request))
    return StructResponse(WebhookTestQueued(webhook_id), status_code=202)


async def list_deliveries(request: Request) -> Response:
    site_id = await _site_id(request)
    found = await runtime_of(request).webhooks.deliveries(site_id, _number(request))
    return StructResponse(WebhookDeliveries([WebhookDelivery.of(each) for each in found]))


async def replay_delivery(request: Request) -> Response:
    site_id = await _site_id(request)
    number, delivery = _number(request), int(path_value(request.path_params, "delivery_id"))
    replayed = await runtime_of(request).webhooks.replay(site_id, number, delivery)
    return StructResponse(WebhookDelivery.of(replayed), status_code=202)


routes = [
    Route("/api/webhooks", list_endpoints, methods=["GET"]),
    Route("/api/webhooks", add_endpoint, methods=["POST"]),
    Route("/api/webhooks/{number}", remove_endpoint, methods=["DELETE"]),
    Route("/api/webhooks/{number}/rotate", rotate_secret, methods=["POST"]),
    Route("/api/webhooks/{number}/enable", enable_endpoint, methods=["POST"]),
    Route("/api/webhooks/{number}/test", send_test, methods=["POST"]),
    Route("/api/webhooks/{number}/deliveries", list_deliveries, methods=["GET"]),
    Route(
        "/api/webhooks/{number}/deliveries/{delivery_id}/replay",
        replay_delivery,
        methods=["POST"],
    ),
]
