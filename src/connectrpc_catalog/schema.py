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

import base64
import codecs
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import descriptor, descriptor_pb2, json_format, message_factory

__all__ = [
    "INFRASTRUCTURE_PACKAGES",
    "JSON_SCHEMA_DIALECT",
    "WELL_KNOWN_TYPES",
    "is_infrastructure",
    "message_schema",
    "options_of",
    "schema_documents",
]

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
        if not desc.has_options:
            return
        options = [
            o
            for o in options_of(desc, _pool_of(desc))
            if o[0] != "deprecated" and not o[0].startswith("(buf.validate.")
        ]
        if options:
            schema["x-proto-options"] = [{"name": n, "value": v} for n, v in options]

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
        if not field.is_repeated:
            annotations["x-proto-presence"] = "explicit" if field.has_presence else "implicit"
        if field.type == _FD.TYPE_GROUP:
            annotations["x-proto-encoding"] = "delimited"
        if field.type == _FD.TYPE_ENUM and field.enum_type.is_closed:
            annotations["x-proto-closed-enum"] = True
        self._describe(schema, f"{owner}.{field.name}", field)
        rules = _validate_rules(field, "field")
        if rules:
            _apply_rules(schema, rules, field)
        schema.update(annotations)
        return schema

    def message(self, desc: Any) -> dict[str, Any]:
        """Object schema for a (non-WKT) message, without ``title``."""
        name = desc.full_name
        proto = descriptor_pb2.DescriptorProto()
        desc.CopyToProto(proto)
        declared = {f.name: f for f in proto.field}
        synthetic = {
            f.oneof_index for f in proto.field if f.proto3_optional and f.HasField("oneof_index")
        }
        properties: dict[str, Any] = {}
        groups: dict[str, list[str]] = {}
        required: list[str] = []
        for field in desc.fields:
            oneof = field.containing_oneof
            oneof_name = oneof.name if oneof is not None and oneof.index not in synthetic else None
            prop = self.field(field, name, oneof_name)
            _default(prop, field, declared.get(field.name))
            properties[field.json_name] = prop
            if oneof_name is not None:
                groups.setdefault(oneof_name, []).append(field.json_name)
            if field.is_required or prop.pop("x-buf-validate-required", False):
                required.append(field.json_name)
        for ext in _extensions(desc):
            prop = self.field(ext, ext.full_name.rpartition(".")[0], None)
            prop["x-proto-extension"] = ext.full_name
            properties[f"[{ext.full_name}]"] = prop
        schema: dict[str, Any] = {}
        self._describe(schema, name, desc)
        schema["type"] = "object"
        schema["properties"] = properties
        schema["additionalProperties"] = False
        if required:
            schema["required"] = required
        constraints = [_at_most_one(members) for members in groups.values() if len(members) > 1]
        for oneof in desc.oneofs:
            rules = _validate_rules(oneof, "oneof")
            members = groups.get(oneof.name)
            if rules and members:
                schema.setdefault("x-buf-validate-oneofs", {})[oneof.name] = rules
                if rules.get("required"):
                    constraints.append({"anyOf": [{"required": [m]} for m in members]})
        rules = _validate_rules(desc, "message")
        if rules:
            schema["x-buf-validate"] = rules
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


def _pool_of(desc: Any) -> Any:
    """The pool a descriptor lives in (oneofs, methods and enum values via their owner)."""
    for owner in (desc, getattr(desc, "containing_type", None), getattr(desc, "type", None)):
        file = getattr(owner, "file", None)
        if file is not None:
            return file.pool
    service = getattr(desc, "containing_service", None)
    return service.file.pool if service is not None else None


def _extensions(desc: Any) -> list[Any]:
    """The extensions of `desc` that its pool (every loaded schema) knows, by number."""
    if not desc.extension_ranges:
        return []
    try:
        found = desc.file.pool.FindAllExtensions(desc)
    except (KeyError, AttributeError):
        return []
    return sorted(found, key=lambda e: e.number)


_FLOAT_WORDS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _default(schema: dict[str, Any], field: Any, proto: Any) -> None:
    """`default` from a proto2/editions `[default = ...]`, in its proto3 JSON form."""
    if proto is None or not proto.HasField("default_value") or field.is_repeated:
        return
    text: str = proto.default_value
    value: Any
    if field.type == _FD.TYPE_BOOL:
        value = text == "true"
    elif field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        value = _FLOAT_WORDS.get(text.lower())
        if value is None:
            value = float(text)
    elif field.type in _SIGNED_64 or field.type in _UNSIGNED_64:
        value = str(int(text, 0))
    elif field.type in _SIGNED_32 or field.type in _UNSIGNED_32:
        value = int(text, 0)
    elif field.type == _FD.TYPE_BYTES:
        value = base64.b64encode(codecs.escape_decode(text.encode())[0]).decode()
    else:  # string, enum (its value's name)
        value = text
    schema["default"] = value


def _validate_rules(desc: Any, kind: str) -> dict[str, Any]:
    """The `(buf.validate.<kind>)` rules set on a field, message or oneof, as JSON."""
    if not desc.has_options:
        return {}
    wanted = f"(buf.validate.{kind})"
    for name, value in options_of(desc, _pool_of(desc)):
        if name == wanted and isinstance(value, dict):
            return value
    return {}


_STRING_FORMATS = {
    "email": "email",
    "uri": "uri",
    "uriRef": "uri-reference",
    "uuid": "uuid",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
}
_NUMBER_RULES = (
    "int32",
    "int64",
    "uint32",
    "uint64",
    "sint32",
    "sint64",
    "fixed32",
    "fixed64",
    "sfixed32",
    "sfixed64",
    "float",
    "double",
)


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return float(value) if value not in ("NaN", "Infinity", "-Infinity") else None
    return value


def _apply_rules(schema: dict[str, Any], rules: dict[str, Any], field: Any) -> None:
    """Add the standard keywords that buf.validate rules map to; keep all in
    ``x-buf-validate`` (the UI shows them; CEL and the rest only live there)."""
    schema["x-buf-validate"] = rules
    if rules.get("required"):
        schema["x-buf-validate-required"] = True
    if field.is_repeated and "map" in rules and schema.get("type") == "object":
        pairs = rules["map"]
        for rule, keyword in (("minPairs", "minProperties"), ("maxPairs", "maxProperties")):
            if rule in pairs:
                schema[keyword] = int(pairs[rule])
        return
    target = schema
    if field.is_repeated and schema.get("type") == "array":
        items = rules.get("repeated", {})
        for rule, keyword in (("minItems", "minItems"), ("maxItems", "maxItems")):
            if rule in items:
                schema[keyword] = int(items[rule])
        if items.get("unique"):
            schema["uniqueItems"] = True
        rules = items.get("items", {})
        target = schema["items"]
    _apply_value_rules(target, rules)


def _apply_value_rules(target: dict[str, Any], rules: dict[str, Any]) -> None:
    string = rules.get("string")
    if isinstance(string, dict):
        for rule, keyword in (("minLen", "minLength"), ("maxLen", "maxLength")):
            if rule in string:
                target[keyword] = int(string[rule])
        if "len" in string:
            target["minLength"] = target["maxLength"] = int(string["len"])
        if "pattern" in string and "pattern" not in target:
            target["pattern"] = string["pattern"]
        if "const" in string:
            target["const"] = string["const"]
        if string.get("in"):
            target["enum"] = list(string["in"])
        if string.get("example"):
            target["examples"] = list(string["example"])
        for rule, fmt in _STRING_FORMATS.items():
            if string.get(rule) is True:
                target["format"] = fmt
        return
    for kind in _NUMBER_RULES:
        number = rules.get(kind)
        if not isinstance(number, dict):
            continue
        low = {k: _number(number[k]) for k in ("gt", "gte") if k in number}
        high = {k: _number(number[k]) for k in ("lt", "lte") if k in number}
        lo = next(iter(low.values()), None)
        hi = next(iter(high.values()), None)
        if lo is not None and hi is not None and hi < lo:
            return  # an exclusive range ("outside lo..hi"): only x-buf-validate says it
        for rule, keyword in (
            ("gt", "exclusiveMinimum"),
            ("gte", "minimum"),
            ("lt", "exclusiveMaximum"),
            ("lte", "maximum"),
        ):
            value = _number(number[rule]) if rule in number else None
            if value is None:
                continue
            target[keyword] = value
            if keyword == "exclusiveMinimum":
                target.pop("minimum", None)
            if keyword == "exclusiveMaximum":
                target.pop("maximum", None)
        if "const" in number and _number(number["const"]) is not None:
            target["const"] = _number(number["const"])
        if number.get("in"):
            target["enum"] = [_number(v) for v in number["in"]]
        examples = [_number(v) for v in number.get("example", ())]
        if any(v is not None for v in examples):
            target["examples"] = [v for v in examples if v is not None]
        return


INFRASTRUCTURE_PACKAGES = ("grpc.reflection.", "grpc.health.", "grpc.channelz.")
"""Packages of services that are plumbing (reflection, health), not an API."""


def is_infrastructure(service_name: str) -> bool:
    """Whether a service is gRPC infrastructure (server reflection, health, channelz)."""
    return service_name.startswith(INFRASTRUCTURE_PACKAGES)


_SKIPPED_OPTIONS = frozenset({"map_entry"})


def options_of(desc: Any, pool: Any = None) -> list[tuple[str, Any]]:
    """The options set on a descriptor as (name, JSON value) pairs, in field order.

    Custom options (extensions such as `google.api.http`) are named `(full.name)`; they
    are read through `pool` (the schema's own pool), which knows their definitions.
    """
    if not desc.has_options:
        return []

    options = desc.GetOptions()
    if pool is not None:
        try:
            own = pool.FindMessageTypeByName(options.DESCRIPTOR.full_name)
        except KeyError:
            own = None
        if own is not None:
            dynamic = message_factory.GetMessageClass(own)()
            try:
                dynamic.ParseFromString(options.SerializeToString())
                options = dynamic
            except Exception:  # options the pool cannot read: keep the standard ones
                pass
    out: list[tuple[str, Any]] = []
    for field, value in options.ListFields():
        if field.name in _SKIPPED_OPTIONS:
            continue
        name = f"({field.full_name})" if field.is_extension else field.name
        out.append((name, _option_json(field, value, pool)))
    return out


def _option_json(field: Any, value: Any, pool: Any) -> Any:
    def one(v: Any) -> Any:
        if field.type in _MESSAGE_TYPES:
            return json_format.MessageToDict(v, descriptor_pool=pool)
        if field.type == _FD.TYPE_ENUM:
            enum = field.enum_type.values_by_number.get(v)
            return enum.name if enum is not None else v
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        return v

    if field.is_repeated:
        return [one(v) for v in value]
    return one(value)
