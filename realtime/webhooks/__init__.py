"""Telling a site's backend what happened: its endpoints, signed deliveries from the
outbox, retried with back-off, one batch per endpoint in flight."""

from realtime.platform.outbox import SUBSCRIBABLE, Subscriptions, WebhookType
from realtime.webhooks.addresses import UnsafeAddress, check_url
from realtime.webhooks.dispatcher import Dispatcher, new_holder
from realtime.webhooks.endpoints import DeliveryInfo, Endpoint, Rotated, WebhookEndpoints
from realtime.webhooks.queue import DeliveryQueue, RetryPolicy
from realtime.webhooks.sender import Attempt, Sender
from realtime.webhooks.signing import SECRET_PREFIX, new_secret, signature

__all__ = [
    "SECRET_PREFIX",
    "SUBSCRIBABLE",
    "Attempt",
    "DeliveryInfo",
    "DeliveryQueue",
    "Dispatcher",
    "Endpoint",
    "RetryPolicy",
    "Rotated",
    "Sender",
    "Subscriptions",
    "UnsafeAddress",
    "WebhookEndpoints",
    "WebhookType",
    "check_url",
    "new_holder",
    "new_secret",
    "signature",
]
