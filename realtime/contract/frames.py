"""Both WebSocket protocols, frame by frame: the session socket (declared where delivery
writes it) and the dashboard's live socket."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from realtime.contract.dashboard import FeedItem, Stats, ViewQuery
from realtime.contract.service import ErrorDetail
from realtime.delivery import ClientFrame, ServerFrame

# The session socket's frames are declared where delivery writes them; named here too.
SessionServerFrame = ServerFrame
SessionClientFrame = ClientFrame

MAX_DASHBOARD_FRAME = 4096


class HelloFrame(Struct, rename="camel", tag_field="type", tag="hello"):
    """Server → dashboard, first: whose dashboard this is."""

    site_id: str
    operator: Annotated[str | None, Meta(description="The operator's e-mail; null for a key.")]


class FeedFrame(Struct, tag_field="type", tag="feed"):
    """Server → dashboard: new rows of the current view, newest first."""

    items: list[FeedItem]


class TeaserFate(Struct, rename="camel"):
    id: str
    kind: str
    session_id: str | None
    via: str | None


class TeasersFrame(Struct, tag_field="type", tag="teasers"):
    """Server → dashboard: what became of teasers, whatever the view (the compose dialog's
    live status)."""

    items: list[TeaserFate]


class StatsFrame(Struct, tag_field="type", tag="stats"):
    """Server → dashboard: the metric cards, on activity (≤ 2/s) and every 5 s."""

    stats: Stats


class ResyncFrame(Struct, tag_field="type", tag="resync"):
    """Server → dashboard: live rows were lost; reload the view."""


class ErrorFrame(Struct, tag_field="type", tag="error"):
    """Server → dashboard: the last view frame was refused; the view before it stays."""

    error: ErrorDetail


class ViewFrame(ViewQuery, tag_field="type", tag="view"):
    """Dashboard → server: show me this view from now on."""


DashboardServerFrame = HelloFrame | FeedFrame | TeasersFrame | StatsFrame | ResyncFrame | ErrorFrame
DashboardClientFrame = ViewFrame
