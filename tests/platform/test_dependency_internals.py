"""What Teaser takes from inside its dependencies, beyond their public API, still exists.

api/httpprotocol.py and api/wsprotocol.py subclass uvicorn's protocols and use their
attributes; fanout/backends/redis.py reads a redis-py connection's `_writer`. pyproject.toml
pins both to the releases tested; these tests fail first when an upgrade renames one of
those names, before a behaviour test fails in some roundabout way, or doesn't."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from api.httpprotocol import HeadLimitedHttpProtocol
from api.wsprotocol import LeanWebSocketsProtocol
from tests.support import require_redis


def test_every_attribute_the_lean_websocket_protocol_uses_is_uvicorns() -> None:
    missing = used_from_parent(LeanWebSocketsProtocol) - defined_by(WebSocketsSansIOProtocol)
    assert missing == set(), f"uvicorn's WebSocketsSansIOProtocol no longer has {missing}"


def test_every_attribute_the_head_limited_protocol_uses_is_uvicorns() -> None:
    missing = used_from_parent(HeadLimitedHttpProtocol) - defined_by(HttpToolsProtocol)
    assert missing == set(), f"uvicorn's HttpToolsProtocol no longer has {missing}"


@pytest.mark.parametrize(
    ("owner", "names"),
    [
        (RequestResponseCycle, {"response_complete", "keep_alive"}),
        (ServerState, {"default_headers"}),
        (FlowControl, {"resume_reading"}),
    ],
    ids=["cycle", "server_state", "flow"],
)
def test_the_head_limited_protocol_reaches_through_uvicorns_helpers(
    owner: type, names: set[str]
) -> None:
    source = inspect.getsource(HeadLimitedHttpProtocol)
    assert all(f".{name}" in source for name in names), "the list below is out of date"
    assert names - defined_by(owner) == set()


def test_the_checks_see_a_rename() -> None:
    class Renamed(WebSocketsSansIOProtocol):
        def drop(self) -> None:
            del self.handshake_was_complete  # type: ignore[attr-defined]

    assert used_from_parent(Renamed) - defined_by(WebSocketsSansIOProtocol) == {
        "handshake_was_complete"
    }


def test_a_redis_connection_still_keeps_its_stream_writer_in_writer() -> None:
    assert "_writer" in defined_by(AbstractConnection)


async def test_a_connected_redis_connection_has_a_writer_with_a_transport() -> None:
    client = redis.asyncio.from_url(await require_redis())
    try:
        await client.ping()
        connection: Any = await client.connection_pool.get_connection()
        try:
            assert not connection._writer.transport.is_closing()
        finally:
            await client.connection_pool.release(connection)
    finally:
        await client.aclose()


def defined_by(cls: type) -> set[str]:
    """Names a class and its bases have: class attributes and methods, and every attribute
    their methods assign to `self`."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        names.update(vars(klass))
        names.update(getattr(klass, "__annotations__", {}))
        names.update(_assigned_to_self(klass))
    return names


def used_from_parent(cls: type) -> set[str]:
    """Names a subclass reads, writes, deletes or calls on `self` or `super()` that it does
    not define itself (its own methods, and what its own `__init__` assigns)."""
    tree = _tree_of(cls)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (
            (isinstance(node.value, ast.Name) and node.value.id == "self")
            or (
                isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "super"
            )
        )
    }
    own = set(vars(cls)) - {"__init__"}
    init = vars(cls).get("__init__")
    if init is not None:
        own |= _assigned_to_self_in(ast.parse(textwrap.dedent(inspect.getsource(init))))
    super_calls = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "super"
    }
    return (used - own) | super_calls


def _tree_of(cls: type) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(cls)))


def _assigned_to_self(cls: type) -> set[str]:
    try:
        return _assigned_to_self_in(_tree_of(cls))
    except (OSError, TypeError):  # a class written in C: its attributes are in vars()
        return set()


def _assigned_to_self_in(tree: ast.AST) -> set[str]:
    targets: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets.append(node.target)
    names: set[str] = set()
    for target in targets:
        for part in ast.walk(target):
            if (
                isinstance(part, ast.Attribute)
                and isinstance(part.value, ast.Name)
                and part.value.id == "self"
            ):
                names.add(part.attr)
    return names


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (LeanWebSocketsProtocol, WebSocketsSansIOProtocol),
        (HeadLimitedHttpProtocol, HttpToolsProtocol),
    ],
    ids=["websocket", "http"],
)
def test_every_hook_the_protocols_override_is_still_called_by_that_name(
    ours: type, theirs: type
) -> None:
    hooks = {name for name, value in vars(ours).items() if callable(value) and name[0] != "_"}
    assert hooks - {"__init__"} <= defined_by(theirs)
