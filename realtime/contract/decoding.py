"""Decoding is validation: JSON (or a query's strings) into a contract type, with msgspec's
refusals turned into the API's own `invalid_field` errors, the field's path kept in front
(`[5].message: must not be empty`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as types

from realtime.platform import (
    MISSING_FIELD,
    UNKNOWN_FIELD,
    InvalidInput,
    TeaserError,
    problem_and_path,
)

T = TypeVar("T")

# msgspec says where: "Expected `int`, got `str` - at `$[3].expiresIn`".
STEP = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")
# A refused key of an object: "Expected `str` of length <= 64 - at `key` in `$.props`".
BAD_KEY = re.compile(r"^(?P<detail>.*) - at `key` in `\$(?P<path>[^`]*)`$", re.DOTALL)
WRONG_TYPE = re.compile(r"^Expected `([^`]+)`, got `(\w+)`$")
JSON_KINDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
              "object": "an object", "array": "an array", "null": "null"}  # fmt: skip


class MalformedJSON(TeaserError):
    code = "malformed_json"


def decode_json(body: bytes, into: type[T]) -> T:
    """A request body as `into`: MalformedJSON if it is not JSON, InvalidInput if it is
    JSON of the wrong shape."""
    if not body:
        raise MalformedJSON("request body is empty; expected JSON")
    try:
        # The fields a type does not name are skipped unread: their bytes too must be text.
        body.decode("utf-8")
        decoded: T = _decoder(into).decode(body)
        return decoded
    except UnicodeDecodeError:
        raise MalformedJSON("request body is not valid JSON: it is not UTF-8") from None
    except msgspec.ValidationError as exc:
        # Validation runs while parsing, so a wrong field can be met before the document's
        # own fault (`{"a": 1} x`); a body that is not JSON is a 400 whatever it holds.
        _well_formed(body)
        raise invalid(exc, into) from None
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None


def _well_formed(body: bytes) -> None:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJSON("request body is not valid JSON: nested too deeply") from None


def from_strings(pairs: Iterable[tuple[str, str]], into: type[T]) -> T:
    """A query string's (name, value) pairs as `into`, numbers read from their digits. An
    empty value is as good as none (`?filter=` is the default filter); a name given twice
    is refused, since which of the two was meant can't be known."""
    given: dict[str, str] = {}
    for name, value in pairs:
        if name in given:
            raise InvalidInput(name, "is given more than once")
        if value != "":
            given[name] = value
    try:
        return msgspec.convert(given, into, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(exc, into) from None


def invalid(exc: msgspec.ValidationError, into: object) -> InvalidInput:
    """msgspec's refusal in the API's words, naming the field by its path."""
    if key := BAD_KEY.match(str(exc)):
        return _bad_key(key["detail"], key["path"].removeprefix("."), into)
    detail, path = problem_and_path(exc)
    for pattern in (MISSING_FIELD, UNKNOWN_FIELD):
        named = pattern.match(detail)
        if named:
            path = f"{path}.{named[1]}" if path else named[1]
            return InvalidInput(
                path, "is required" if pattern is MISSING_FIELD else "is not a field here"
            )
    refusal = _refusal_at(into, path)
    wrong = WRONG_TYPE.match(detail)
    if wrong:
        got = JSON_KINDS.get(wrong[2], wrong[2])
        return InvalidInput(
            path or "body", f"{refusal or 'must be ' + _expected(wrong[1])}, got {got}"
        )
    return InvalidInput(path or "body", refusal or detail[:1].lower() + detail[1:])


def _bad_key(detail: str, path: str, into: object) -> InvalidInput:
    """A key of an object (`props`) its declaration refuses."""
    node = _type_at(types.type_info(into), path)
    keys = _unwrap(node, types.DictType) if node is not None else None
    refusal = _refusal(keys.key_type) if isinstance(keys, types.DictType) else None
    return InvalidInput(
        path or "body", refusal or f"has a key refused: {detail[:1].lower()}{detail[1:]}"
    )


def _expected(names: str) -> str:
    kinds = [JSON_KINDS.get(name.strip(), name.strip()) for name in names.split("|")]
    return " or ".join(dict.fromkeys(kinds))


def refusal_of(kind: object) -> str | None:
    """What a value of `kind` must be, as its declaration words it (Meta `extra`)."""
    return _refusal(types.type_info(kind))


def _refusal_at(into: object, path: str) -> str | None:
    """What the field at `path` must be, as its declaration words it (Meta `extra`)."""
    return _refusal(_type_at(types.type_info(into), path))


def _type_at(node: types.Type, path: str) -> types.Type | None:
    # The path comes as `expiresIn` or `[0].expiresIn`: a first name has no dot before it.
    steps = path if not path or path.startswith("[") else f".{path}"
    for name, index in STEP.findall(steps):
        node = _unwrap(node, types.StructType if name else types.ListType)
        if name and isinstance(node, types.StructType):
            matches = [f.type for f in node.fields if f.encode_name == name]
            if not matches:
                return None
            node = matches[0]
        elif index == "..." and isinstance(node, types.DictType):
            node = node.value_type
        elif index and isinstance(node, types.ListType):
            node = node.item_type
        else:
            return None
    return node


def _unwrap(node: types.Type, step: type[types.Type] = types.Type) -> types.Type:
    """The type a step goes into: of a union (an object or a list of them), the member
    that step can enter."""
    if isinstance(node, types.UnionType):
        solid = [each for each in node.types if not isinstance(each, types.NoneType)]
        entered = [each for each in solid if isinstance(_bare(each), step)]
        node = solid[0] if len(solid) == 1 else entered[0] if len(entered) == 1 else node
    return _bare(node)


def _bare(node: types.Type) -> types.Type:
    return node.type if isinstance(node, types.Metadata) else node


def _refusal(node: types.Type | None) -> str | None:
    if isinstance(node, types.UnionType):
        node = next((t for t in node.types if isinstance(t, types.Metadata)), None)
    if isinstance(node, types.Metadata) and node.extra:
        refusal = node.extra.get("refusal")
        return str(refusal) if refusal else None
    return None


def _decoder(into: object) -> msgspec.json.Decoder[Any]:
    """One decoder per type, built once: building it is most of a small body's cost."""
    decoder = _DECODERS.get(into)
    if decoder is None:
        decoder = _DECODERS[into] = msgspec.json.Decoder(into)
    return decoder


_DECODERS: dict[object, msgspec.json.Decoder[Any]] = {}


@cache
def _encoder() -> msgspec.json.Encoder:
    return msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _encoder().encode(value)
