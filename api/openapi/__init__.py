"""The HTTP API as OpenAPI 3.1 and the WebSocket protocols as AsyncAPI 3, both generated
from the contract's types; only the prose around them is written by hand."""

from api.openapi.asyncapi import asyncapi_document
from api.openapi.document import openapi_document
from api.openapi.operations import OPERATIONS, Operation

__all__ = ["OPERATIONS", "Operation", "asyncapi_document", "openapi_document"]
