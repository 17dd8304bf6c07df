"""JSON Schema (draft 2020-12) for Protobuf messages, following the proto3 JSON mapping.

Encoding choices (stable; clients depend on them):

* One document per type, shared definitions: every message and enum gets its own
  document, and a field of another message or enum type refers to it by its fully
  qualified name, ``{"$ref": "<FullName>"}`` (also for recursion). Each document carries
  ``"$id": "<FullName>"`` (a relative URI: the documents of one response share one base
  URI, so a client may place them under any base), so the references are ordinary
  2020-12 cross-document references, and ``message_schemas[ref]`` is the target. No
  document has ``$defs``; a type's definition appears once per response, whatever
  refers to it. For example ``acme.v1.Req`` with a ``Color color = 1`` field::

      {"$schema": "https://json-schema.org/draft/2020-12/schema",
       "$id": "acme.v1.Req", "title": "acme.v1.Req", "type": "object",
       "properties": {"color": {"$ref": "acme.v1.Color", "x-proto-kind": "enum", ...}},
       "additionalProperties": false, "x-proto-oneofs": {}}

  A message document always has ``title`` (the fully qualified name), ``type:
  "object"`` and ``properties`` at its top level.
* 64-bit integers accept a decimal string *or* a JSON integer:
  ``{"type": ["string", "integer"], "pattern": ...}`` (``pattern`` only constrains
  strings; ``minimum``/``maximum`` only constrain numbers).
* ``float``/``double`` accept a number or one of ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``: ``{"type": ["number", "string"], "anyOf": [...]}``.
* Enum documents are ``{"type": ["string", "integer"], "anyOf": [...]}``: the value
  names, or an integer (any int32 for open enums, the declared numbers for closed
  ones), with the values listed in ``x-proto-enum-values``.
  ``google.protobuf.NullValue`` is inlined as ``{"type": "null"}``.
* Well-known types are inlined in their special JSON forms and never get a document of
  their own, except as a method's input or output (then with an empty ``properties``).
* Map entries are inlined as objects (``additionalProperties`` is the value schema).
* Messages are closed (``additionalProperties: false``) and keyed by ``json_name``.

Keywords starting with ``x-proto-`` are UI annotations that validators ignore.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import descriptor, descriptor_pb2

__all__ = ["JSON_SCHEMA_DIALECT", "WELL_KNOWN_TYPES", "message_schema", "schema_documents"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_FD = descriptor.FieldDescriptor
_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)

_TYPE_NAMES: dict[int, str] = {
    _FD.TYPE_DOUBLE: "double",
    _FD.TYPE_FLOAT: "float",
    _FD.TYPE_INT64: "int64",
    _FD.TYPE_UINT64: "uint64",
    _FD.TYPE_INT32: "int32",
    _FD.TYPE_FIXED64: "fixed64",
    _FD.TYPE_FIXED32: "fixed32",
    _FD.TYPE_BOOL: "bool",
    _FD.TYPE_STRING: "string",
    _FD.TYPE_GROUP: "group",
    _FD.TYPE_MESSAGE: "message",
    _FD.TYPE_BYTES: "bytes",
    _FD.TYPE_UINT32: "uint32",
    _FD.TYPE_ENUM: "enum",
    _FD.TYPE_SFIXED32: "sfixed32",
    _FD.TYPE_SFIXED64: "sfixed64",
    _FD.TYPE_SINT32: "sint32",
    _FD.TYPE_SINT64: "sint64",
}

_SIGNED_32 = frozenset({_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32})
_UNSIGNED_32 = frozenset({_FD.TYPE_UINT32, _FD.TYPE_FIXED32})
_SIGNED_64 = frozenset({_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64})
_UNSIGNED_64 = frozenset({_FD.TYPE_UINT64, _FD.TYPE_FIXED64})
_MESSAGE_TYPES = frozenset({_FD.TYPE_MESSAGE, _FD.TYPE_GROUP})

_SIGNED_DIGITS = "^-?[0-9]+$"
_UNSIGNED_DIGITS = "^[0-9]+$"
_BASE64 = "^[A-Za-z0-9+/_-]*={0,2}$"
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_DURATION = r"^-?[0-9]+(\.[0-9]{1,9})?s$"
_NULL_VALUE = "google.protobuf.NullValue"


def _integer(bounds: tuple[int, int]) -> dict[str, Any]:
    return {"type": "integer", "minimum": bounds[0], "maximum": bounds[1]}


def _int64(pattern: str, bounds: tuple[int, int]) -> dict[str, Any]:
    return {
        "type": ["string", "integer"],
        "pattern": pattern,
        "minimum": bounds[0],
        "maximum": bounds[1],
    }


def _floating() -> dict[str, Any]:
    return {
        "type": ["number", "string"],
        "anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}],
    }


def _scalar(field_type: int) -> dict[str, Any]:
    """Return a fresh schema for a scalar field type."""
    if field_type in _SIGNED_32:
        return _integer(_INT32)
    if field_type in _UNSIGNED_32:
        return _integer(_UINT32)
    if field_type in _SIGNED_64:
        return _int64(_SIGNED_DIGITS, _INT64)
    if field_type in _UNSIGNED_64:
        return _int64(_UNSIGNED_DIGITS, _UINT64)
    if field_type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return _floating()
    if field_type == _FD.TYPE_BOOL:
        return {"type": "boolean"}
    if field_type == _FD.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64", "pattern": _BASE64}
    return {"type": "string"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Also allow JSON ``null`` (used for the wrapper types)."""
    types = schema["type"]
    schema["type"] = [*types, "null"] if isinstance(types, list) else [types, "null"]
    if "anyOf" in schema:
        schema["anyOf"].append({"type": "null"})
    return schema


def _wrapper(field_type: int) -> Callable[[], dict[str, Any]]:
    return lambda: _nullable(_scalar(field_type))


WELL_KNOWN_TYPES: Mapping[str, Callable[[], dict[str, Any]]] = {
    "google.protobuf.Timestamp": lambda: {
        "type": "string",
        "format": "date-time",
        "pattern": _TIMESTAMP,
    },
    "google.protobuf.Duration": lambda: {"type": "string", "pattern": _DURATION},
    "google.protobuf.Struct": lambda: {"type": "object"},
    "google.protobuf.Value": dict,
    "google.protobuf.ListValue": lambda: {"type": "array"},
    "google.protobuf.Any": lambda: {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    "google.protobuf.FieldMask": lambda: {"type": "string"},
    "google.protobuf.Empty": lambda: {"type": "object", "additionalProperties": False},
    "google.protobuf.DoubleValue": _wrapper(_FD.TYPE_DOUBLE),
    "google.protobuf.FloatValue": _wrapper(_FD.TYPE_FLOAT),
    "google.protobuf.Int64Value": _wrapper(_FD.TYPE_INT64),
    "google.protobuf.UInt64Value": _wrapper(_FD.TYPE_UINT64),
    "google.protobuf.Int32Value": _wrapper(_FD.TYPE_INT32),
    "google.protobuf.UInt32Value": _wrapper(_FD.TYPE_UINT32),
    "google.protobuf.BoolValue": _wrapper(_FD.TYPE_BOOL),
    "google.protobuf.StringValue": _wrapper(_FD.TYPE_STRING),
    "google.protobuf.BytesValue": _wrapper(_FD.TYPE_BYTES),
}
"""Fresh-schema factories for message types with a special proto3 JSON form."""


def _is_map_entry(desc: Any) -> bool:
    return bool(desc.has_options and desc.GetOptions().map_entry)


def _is_deprecated(desc: Any) -> bool:
    return bool(desc.has_options and desc.GetOptions().deprecated)


def _synthetic_oneofs(desc: Any) -> set[int]:
    """Indexes of the synthetic oneofs that back proto3 ``optional`` fields."""
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    return {f.oneof_index for f in proto.field if f.proto3_optional and f.HasField("oneof_index")}


def _at_most_one(names: list[str]) -> dict[str, Any]:
    """A constraint satisfied when at most one of ``names`` is present.

    Exactly one branch of the ``oneOf`` holds: "none present" or "only X present".
    """
    present = [{"required": [name]} for name in names]
    return {"oneOf": [{"not": {"anyOf": present}}, *present]}


class _Builder:
    """Generates one type's document; collects the types it refers to by ``$ref``."""

    def __init__(self, comments: Mapping[str, str]) -> None:
        self.comments = comments
        self.refs: list[Any] = []

    def ref(self, desc: Any) -> dict[str, Any]:
        self.refs.append(desc)
        return {"$ref": desc.full_name}

    def enum_ref(self, desc: Any) -> dict[str, Any]:
        if desc.full_name == _NULL_VALUE:
            return {"type": "null"}
        return self.ref(desc)

    def enum_schema(self, desc: Any) -> dict[str, Any]:
        """The body of an enum's document (without ``$schema``/``$id``/``title``)."""
        name = desc.full_name
        values: list[dict[str, Any]] = []
        for value in desc.values:
            entry: dict[str, Any] = {
                "name": value.name,
                "number": value.number,
                "description": self.comments.get(f"{name}.{value.name}", ""),
            }
            if _is_deprecated(value):
                entry["deprecated"] = True
            values.append(entry)
        if desc.is_closed:
            numbers = sorted({v["number"] for v in values})
            integer: dict[str, Any] = {"type": "integer", "enum": numbers}
        else:
            integer = _integer(_INT32)
        schema: dict[str, Any] = {}
        self._describe(schema, name, desc)
        schema["type"] = ["string", "integer"]
        schema["anyOf"] = [{"type": "string", "enum": [v["name"] for v in values]}, integer]
        schema["x-proto-enum-values"] = values
        return schema

    def _describe(self, schema: dict[str, Any], name: str, desc: Any) -> None:
        text = self.comments.get(name)
        if text:
            schema["description"] = text
        if _is_deprecated(desc):
            schema["deprecated"] = True

    def value(self, field: Any) -> tuple[dict[str, Any], str, str | None]:
        """Schema of a single (non-repeated) value, its x-proto-type and WKT name."""
        if field.type in _MESSAGE_TYPES:
            msg = field.message_type
            factory = WELL_KNOWN_TYPES.get(msg.full_name)
            if factory is not None:
                return factory(), msg.full_name, msg.full_name
            return self.ref(msg), msg.full_name, None
        if field.type == _FD.TYPE_ENUM:
            enum = field.enum_type
            wkt = enum.full_name if enum.full_name == _NULL_VALUE else None
            return self.enum_ref(enum), enum.full_name, wkt
        return _scalar(field.type), _TYPE_NAMES[field.type], None

    def field(self, field: Any, owner: str, oneof: str | None) -> dict[str, Any]:
        entry = field.message_type if field.type in _MESSAGE_TYPES else None
        annotations: dict[str, Any] = {
            "x-proto-name": field.name,
            "x-proto-number": field.number,
        }
        if entry is not None and field.is_repeated and _is_map_entry(entry):
            key = entry.fields_by_name["key"]
            val_schema, val_type, wkt = self.value(entry.fields_by_name["value"])
            schema: dict[str, Any] = {"type": "object", "additionalProperties": val_schema}
            if key.type == _FD.TYPE_BOOL:
                schema["propertyNames"] = {"enum": ["true", "false"]}
            elif key.type in _SIGNED_32 or key.type in _SIGNED_64:
                schema["propertyNames"] = {"pattern": _SIGNED_DIGITS}
            elif key.type in _UNSIGNED_32 or key.type in _UNSIGNED_64:
                schema["propertyNames"] = {"pattern": _UNSIGNED_DIGITS}
            annotations["x-proto-type"] = "map"
            annotations["x-proto-kind"] = "map"
            annotations["x-proto-label"] = "map"
            annotations["x-proto-map-key"] = _TYPE_NAMES[key.type]
            annotations["x-proto-map-value"] = val_type
        else:
            item, type_name, wkt = self.value(field)
            if field.is_repeated:
                schema = {"type": "array", "items": item}
                label = "repeated"
            else:
                schema = item
                label = "required" if field.is_required else "optional"
            annotations["x-proto-type"] = type_name
            if field.type in _MESSAGE_TYPES:
                annotations["x-proto-kind"] = "message"
            elif field.type == _FD.TYPE_ENUM:
                annotations["x-proto-kind"] = "enum"
            else:
                annotations["x-proto-kind"] = "scalar"
            annotations["x-proto-label"] = label
        if oneof is not None:
            annotations["x-proto-oneof"] = oneof
        if wkt is not None:
            annotations["x-proto-wkt"] = wkt
        self._describe(schema, f"{owner}.{field.name}", field)
        schema.update(annotations)
        return schema

    def message(self, desc: Any) -> dict[str, Any]:
        """Object schema for a (non-WKT) message, without ``title``."""
        name = desc.full_name
        synthetic = _synthetic_oneofs(desc) if desc.oneofs else set()
        properties: dict[str, Any] = {}
        groups: dict[str, list[str]] = {}
        required: list[str] = []
        for field in desc.fields:
            oneof = field.containing_oneof
            oneof_name = oneof.name if oneof is not None and oneof.index not in synthetic else None
            properties[field.json_name] = self.field(field, name, oneof_name)
            if oneof_name is not None:
                groups.setdefault(oneof_name, []).append(field.json_name)
            if field.is_required:
                required.append(field.json_name)
        schema: dict[str, Any] = {}
        self._describe(schema, name, desc)
        schema["type"] = "object"
        schema["properties"] = properties
        schema["additionalProperties"] = False
        if required:
            schema["required"] = required
        constraints = [_at_most_one(members) for members in groups.values() if len(members) > 1]
        if constraints:
            schema["allOf"] = constraints
        schema["x-proto-oneofs"] = groups
        return schema

    def wkt(self, desc: Any) -> dict[str, Any]:
        """The body of a well-known type's own document (a method's input or output)."""
        name = desc.full_name
        body: dict[str, Any] = {}
        self._describe(body, name, desc)
        body.update(WELL_KNOWN_TYPES[name]())
        body.setdefault("properties", {})
        body["x-proto-wkt"] = name
        return body

    def document(self, desc: Any) -> dict[str, Any]:
        """The document of a message or enum; the types it refers to land in ``refs``."""
        name: str = desc.full_name
        if isinstance(desc, descriptor.EnumDescriptor):
            body = self.enum_schema(desc)
        elif name in WELL_KNOWN_TYPES:
            body = self.wkt(desc)
        else:
            body = self.message(desc)
        return {"$schema": JSON_SCHEMA_DIALECT, "$id": name, "title": name, **body}


def message_schema(desc: descriptor.Descriptor, comments: Mapping[str, str]) -> dict[str, Any]:
    """The JSON Schema document of ``desc`` alone (see the module docstring).

    Other messages and enums are ``{"$ref": "<FullName>"}`` references to their own
    documents, which :func:`schema_documents` produces. ``comments`` maps fully
    qualified names to descriptions, as produced by
    :func:`connectrpc_catalog.comments.index_comments`.

    A well-known type keeps its special JSON form (e.g. ``Timestamp`` is a string), with
    an empty ``properties`` and an ``x-proto-wkt`` annotation.
    """
    return _Builder(comments).document(desc)


def schema_documents(
    roots: Iterable[descriptor.Descriptor],
    comments: Mapping[str, str],
    known: Container[str] = (),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(full name, document)`` for ``roots`` and every type they reach, once each.

    Breadth first, roots first. The work and the output are linear in the number of
    types and fields reached: a type referred to from many places is generated once.
    Names in ``known`` (types the caller already has, with all they reach) are neither
    yielded nor followed. The generator is lazy: a caller may stop at any point (e.g. at
    a size limit).
    """
    seen: set[str] = set()
    queue: deque[Any] = deque(roots)
    while queue:
        desc = queue.popleft()
        name: str = desc.full_name
        if name in seen or name in known:
            continue
        seen.add(name)
        builder = _Builder(comments)
        doc = builder.document(desc)
        queue.extend(d for d in builder.refs if d.full_name not in seen)
        yield name, doc
