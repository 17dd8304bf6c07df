"""The catalog API's JSON codec: strict, so a typo is an error instead of a silent default.

protobuf-py's JSON codec, as connectrpc configures it, ignores unknown keys (`request`
instead of `requestJson` sent an empty message) and keeps only the last member of a
oneof given twice (`protoPath` and `reflectionEndpoint` together dropped one). This
codec refuses both with `invalid_argument`, naming the keys in the API's JSON spelling.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.errors import ConnectError
from protobuf import Message

__all__ = ["StrictJSONCodec"]

M = TypeVar("M", bound=Message)


class _Shape:
    """What a message accepts at its top level, in JSON and proto spellings."""

    __slots__ = ("json_names", "keys", "oneofs", "proto_names", "type_name")

    def __init__(self, message_class: type[Message]) -> None:
        desc = message_class.desc()
        self.type_name: str = desc.name
        self.json_names = sorted(f.json_name for f in desc.fields)
        self.proto_names = {f.json_name: f.name for f in desc.fields}
        self.keys = frozenset((*self.json_names, *self.proto_names.values()))
        self.oneofs = tuple(tuple(f.json_name for f in o.fields) for o in desc.oneofs)

    def given(self, obj: dict[str, Any], names: tuple[str, ...]) -> list[str]:
        return [n for n in names if n in obj or self.proto_names[n] in obj]


_SHAPES: dict[type[Message], _Shape] = {}


def _shape(message_class: type[Message]) -> _Shape:
    shape = _SHAPES.get(message_class)
    if shape is None:
        shape = _SHAPES[message_class] = _Shape(message_class)
    return shape


class StrictJSONCodec(Codec[Message, Any]):
    """Proto3 JSON that rejects unknown keys and oneofs set more than once."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return message.to_json().encode()

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        if data == b"{}":  # the usual body of a call with no arguments: nothing to check
            return message_class()
        try:
            obj = json.loads(data) if data.strip() else {}
        except (ValueError, RecursionError):
            raise ConnectError(
                Code.INVALID_ARGUMENT, "the request body is not valid JSON"
            ) from None
        if not isinstance(obj, dict):
            raise ConnectError(
                Code.INVALID_ARGUMENT, "the request body must be a JSON object ({...})"
            )
        shape = _shape(message_class)
        unknown = sorted(k for k in obj if k not in shape.keys)
        if unknown:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"unknown field(s) {', '.join(map(repr, unknown))} in {shape.type_name}; "
                f"its fields are {', '.join(shape.json_names)}",
            )
        for names in shape.oneofs:
            given = shape.given(obj, names)
            if len(given) > 1:
                raise ConnectError(
                    Code.INVALID_ARGUMENT,
                    f"{' and '.join(given)} were both given; set only one of {', '.join(names)}",
                )
        try:
            return message_class.from_json(data, ignore_unknown_fields=False)
        except (ValueError, TypeError) as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, _readable(exc)) from None


def _readable(exc: Exception) -> str:
    """protobuf-py's message, minus its 'cannot decode X from JSON:' preamble."""
    text = str(exc)
    _, sep, rest = text.partition(" from JSON: ")
    return f"the request is not valid: {rest if sep else text}"
