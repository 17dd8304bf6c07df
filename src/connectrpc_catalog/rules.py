"""buf.validate rules checked like a server using protovalidate would: every standard rule
and every CEL expression of a message type, with the rule's own message.

Uses `protovalidate` (bufbuild's Python implementation, the reference for the rules): it
validates the dynamic messages of a loaded schema directly. One validator per schema
(it caches the rules it compiled per message type); all of it is CPU work, so callers
run `violations` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from .descriptors import Schema
from .jsondepth import JSONDepthError, check_depth
from .problems import Code, RequestError

__all__ = ["Violation", "violations"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where, which, and its message."""

    field_path: str
    rule_id: str
    message: str


def _validator(schema: Schema) -> Any:
    import protovalidate  # imported on first use: it compiles CEL, not needed otherwise

    return schema.cached(("protovalidate",), protovalidate.Validator)


def violations(schema: Schema, desc: Descriptor, text: str, max_depth: int) -> list[Violation]:
    """The rules `text` (proto3 JSON of `desc`) breaks; RequestError when it is no such JSON.

    Blocking (CPU): call it in a worker thread.
    """
    msg = schema.message_class(desc)()
    if text.strip():
        try:
            check_depth(text, max_depth)
        except JSONDepthError as exc:
            raise RequestError(
                f"messageJson is not acceptable JSON: {exc}",
                code=Code.INVALID_ARGUMENT,
                field="messageJson",
            ) from None
        try:
            json_format.Parse(text, msg, descriptor_pool=schema.pool)
        except json_format.ParseError as exc:
            raise RequestError(
                f"messageJson is not a valid {desc.full_name}: {exc}",
                code=Code.INVALID_ARGUMENT,
                field="messageJson",
            ) from None
    import protovalidate

    try:
        found = _validator(schema).collect_violations(msg)
    except protovalidate.CompilationError as exc:
        raise RequestError(
            f"the buf.validate rules of {desc.full_name} do not compile: {exc}",
            code=Code.FAILED_PRECONDITION,
        ) from None
    return [_violation(v) for v in found]


def _violation(v: Any) -> Violation:
    proto = v.proto
    return Violation(
        field_path=_path(proto.field.elements) if proto.field is not None else "",
        rule_id=str(proto.rule_id or ""),
        message=str(proto.message or ""),
    )


def _path(elements: Any) -> str:
    out = ""
    for e in elements:
        name = e.field_name or str(e.field_number)
        out = f"{out}.{name}" if out else name
        sub = getattr(e, "subscript", None)
        value = getattr(sub, "value", None) if sub is not None else None
        if value is not None:
            out += f"[{value!r}]" if isinstance(value, str) else f"[{value}]"
    return out
