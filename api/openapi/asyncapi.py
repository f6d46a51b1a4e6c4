"""/asyncapi.json: the session socket and the dashboard socket as AsyncAPI 3, every frame
generated from its contract type."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import msgspec

from realtime.contract import (
    DashboardClientFrame,
    DashboardServerFrame,
    SessionClientFrame,
    SessionServerFrame,
    ViewQuery,
    WidgetRequest,
)

REF = "#/components/schemas/{name}"
# (channel, address, query type, what the server sends, what it receives, prose)
CHANNELS = (
    ("session", "/api/teaser-ws", WidgetRequest, SessionServerFrame, SessionClientFrame,
     "One visitor session, live: teasers in order of seq, each acked; a ping every 25 s. "
     "The query is a poll's body as strings. A refused upgrade is answered with the JSON "
     "error an HTTP call would get."),
    ("dashboard", "/api/dashboard/ws", ViewQuery, DashboardServerFrame, DashboardClientFrame,
     "An operator's dashboard, live: new feed rows of the current view, teaser fates and "
     "the metric cards. Needs the operator's session cookie (or the site's key headers) "
     "and a same-origin page; the query is the first view."),
)  # fmt: skip


@cache
def asyncapi_document(version: str) -> dict[str, Any]:
    frames = [
        frame
        for _, _, query, sends, receives, _ in CHANNELS
        for frame in (query, *typing.get_args(sends), *typing.get_args(receives))
    ]
    schemas, components = msgspec.json.schema_components(frames, ref_template=REF)
    by_type = dict(zip(frames, schemas, strict=True))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, address, query, sends, receives, prose in CHANNELS:
        own: dict[str, Any] = {}
        for action, union in (("send", sends), ("receive", receives)):
            for frame in typing.get_args(union):
                key = _message_name(name, frame)
                messages[key] = _message(frame, by_type[frame])
                own[key] = {"$ref": f"#/components/messages/{key}"}
                operations[f"{action}{key[0].upper()}{key[1:]}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{name}"},
                    "messages": [{"$ref": f"#/channels/{name}/messages/{key}"}],
                }
        channels[name] = {
            "address": address,
            "description": prose,
            "messages": own,
            "bindings": {"ws": {"method": "GET", "query": components[query.__name__]}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Teaser WebSockets",
            "version": version,
            "description": "Frames are JSON text, each with a `type`. Actions are the "
            "server's: it sends the `send` frames and receives the `receive` ones.",
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


def _message_name(channel: str, frame: type) -> str:
    tag = frame.__struct_config__.tag  # type: ignore[attr-defined]
    return f"{channel}{str(tag).title().replace('_', '')}"


def _message(frame: type, schema: dict[str, Any]) -> dict[str, Any]:
    summary = (frame.__doc__ or frame.__name__).strip().splitlines()[0]
    return {"name": frame.__name__, "summary": summary, "contentType": "application/json",
            "payload": schema}  # fmt: skip
