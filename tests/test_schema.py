"""Tests for connectrpc_catalog.schema (validated with jsonschema's 2020-12 validator, the
cross-document references resolved through a `referencing` registry)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from connectrpc_catalog.comments import index_comments
from connectrpc_catalog.schema import (
    JSON_SCHEMA_DIALECT,
    WELL_KNOWN_TYPES,
    message_schema,
    schema_documents,
)
from tests.protohelp import compile_protos

DEMO = """\
syntax = "proto3";
package demo.v1;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// A tree node.
//
// Second paragraph.
message TreeNode {
  // The node's value.
  string value = 1;
  repeated TreeNode children = 2;
  // Old link.
  TreeNode parent = 3 [deprecated = true];
}

message Ping {
  Pong pong = 1;
  int32 n = 2;
}

message Pong {
  Ping ping = 1;
}

message Scalars {
  int32 i32 = 1;
  sint32 s32 = 2;
  sfixed32 sf32 = 3;
  uint32 u32 = 4;
  fixed32 f32 = 5;
  int64 i64 = 6;
  sint64 s64 = 7;
  sfixed64 sf64 = 8;
  uint64 u64 = 9;
  fixed64 f64 = 10;
  float f = 11;
  double d = 12;
  bool b = 13;
  string s = 14;
  bytes raw = 15;
  string snake_case_name = 16;
}

// Colours.
enum Color {
  // Not set.
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
}

message Outer {
  // Inside.
  message Inner {
    string label = 1;
  }
  Inner inner = 1;
  Color color = 2;
}

message Collections {
  repeated int64 ids = 1;
  map<int32, string> by_id = 2;
  map<bool, Color> flags = 3;
  map<string, Outer.Inner> inners = 4;
  map<uint64, google.protobuf.Timestamp> times = 5;
  repeated Color colors = 6;
}

message Choice {
  // Pick one.
  oneof pick {
    string text = 1;
    int32 number = 2;
    Outer outer = 3;
  }
  optional string maybe = 4;
  optional int32 other = 5;
  oneof solo {
    string only = 6;
  }
}

message Wkts {
  google.protobuf.Timestamp ts = 1;
  google.protobuf.Duration dur = 2;
  google.protobuf.Struct st = 3;
  google.protobuf.Value val = 4;
  google.protobuf.ListValue lv = 5;
  google.protobuf.Any any = 6;
  google.protobuf.FieldMask mask = 7;
  google.protobuf.Empty empty = 8;
  google.protobuf.DoubleValue dv = 9;
  google.protobuf.FloatValue fv = 10;
  google.protobuf.Int64Value i64v = 11;
  google.protobuf.UInt64Value u64v = 12;
  google.protobuf.Int32Value i32v = 13;
  google.protobuf.UInt32Value u32v = 14;
  google.protobuf.BoolValue bv = 15;
  google.protobuf.StringValue sv = 16;
  google.protobuf.BytesValue bytesv = 17;
  google.protobuf.NullValue nul = 18;
  repeated google.protobuf.Timestamp stamps = 19;
}
"""

LEGACY = """\
syntax = "proto2";
package legacy;

enum Level {
  LOW = 1;
  HIGH = 5;
}

message Req {
  required string id = 1;
  optional Level level = 2;
}
"""


class Env:
    """Compiled demo protos plus their comment index."""

    def __init__(self, pool: descriptor_pool.DescriptorPool, comments: dict[str, str]) -> None:
        self.pool = pool
        self.comments = comments

    def schema(self, name: str) -> dict[str, Any]:
        desc = self.pool.FindMessageTypeByName(name)
        return message_schema(desc, self.comments)

    def documents(self, name: str) -> dict[str, dict[str, Any]]:
        """The documents of `name` and of every type it reaches, by full name."""
        desc = self.pool.FindMessageTypeByName(name)
        return dict(schema_documents([desc], self.comments))

    def validator(self, name: str) -> Draft202012Validator:
        return validator_for(self.documents(name), name)


def validator_for(docs: dict[str, dict[str, Any]], name: str) -> Draft202012Validator:
    """A validator of `docs[name]` that resolves references to the other documents."""
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    return Draft202012Validator(docs[name], registry=registry)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    fds, pool = compile_protos(
        tmp_path_factory.mktemp("s"), {"demo/v1/demo.proto": DEMO, "legacy.proto": LEGACY}
    )
    return Env(pool, index_comments(fds.file))


def accepts(validator: Draft202012Validator, instance: Any) -> bool:
    return not list(validator.iter_errors(instance))


ALL_MESSAGES = [
    "demo.v1.TreeNode",
    "demo.v1.Ping",
    "demo.v1.Pong",
    "demo.v1.Scalars",
    "demo.v1.Outer",
    "demo.v1.Outer.Inner",
    "demo.v1.Collections",
    "demo.v1.Choice",
    "demo.v1.Wkts",
    "legacy.Req",
]


@pytest.mark.parametrize("name", ALL_MESSAGES)
def test_schema_is_valid_2020_12_with_top_level_properties(env: Env, name: str) -> None:
    schema = env.schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["title"] == name
    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict)
    assert schema["properties"]
    assert schema["additionalProperties"] is False
    assert schema["$id"] == name
    assert "$ref" not in schema
    assert "$defs" not in schema


@pytest.mark.parametrize("name", ALL_MESSAGES)
def test_every_reference_names_a_document_of_the_set(env: Env, name: str) -> None:
    docs = env.documents(name)
    assert next(iter(docs)) == name  # the root comes first

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for doc in docs.values():
        Draft202012Validator.check_schema(doc)
        assert "$defs" not in doc
        for ref in refs(doc):
            assert ref in docs, (doc["title"], ref)


@pytest.mark.parametrize("name", sorted(WELL_KNOWN_TYPES))
def test_wkt_at_top_level_is_valid(env: Env, name: str) -> None:
    schema = env.schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == name
    assert schema["x-proto-wkt"] == name
    assert "properties" in schema
    assert "$defs" not in schema


def test_top_level_empty(env: Env) -> None:
    v = env.validator("google.protobuf.Empty")
    assert v.schema["type"] == "object"
    assert accepts(v, {})
    assert not accepts(v, {"a": 1})


def test_recursive_tree(env: Env) -> None:
    schema = env.schema("demo.v1.TreeNode")
    assert schema["properties"]["children"]["items"] == {"$ref": "demo.v1.TreeNode"}
    assert set(env.documents("demo.v1.TreeNode")) == {"demo.v1.TreeNode"}
    v = env.validator("demo.v1.TreeNode")
    tree = {"value": "root", "children": [{"value": "a", "children": [{"value": "b"}]}]}
    assert accepts(v, tree)
    assert not accepts(v, {"children": [{"children": [{"value": 3}]}]})
    assert not accepts(v, {"children": [{"bogus": True}]})


def test_mutual_recursion(env: Env) -> None:
    docs = env.documents("demo.v1.Ping")
    assert set(docs) == {"demo.v1.Ping", "demo.v1.Pong"}
    assert docs["demo.v1.Ping"]["properties"]["pong"]["$ref"] == "demo.v1.Pong"
    assert docs["demo.v1.Pong"]["properties"]["ping"]["$ref"] == "demo.v1.Ping"
    v = env.validator("demo.v1.Ping")
    assert accepts(v, {"n": 1, "pong": {"ping": {"n": 2, "pong": {"ping": {"n": 3}}}}})
    assert not accepts(v, {"pong": {"ping": {"pong": {"ping": {"n": "x"}}}}})


def test_unknown_property_rejected(env: Env) -> None:
    v = env.validator("demo.v1.Outer")
    assert accepts(v, {"inner": {"label": "x"}})
    assert not accepts(v, {"nope": 1})
    assert not accepts(v, {"inner": {"label": "x", "nope": 1}})


def test_property_keys_are_json_names(env: Env) -> None:
    props = env.schema("demo.v1.Scalars")["properties"]
    assert "snakeCaseName" in props
    assert "snake_case_name" not in props
    assert props["snakeCaseName"]["x-proto-name"] == "snake_case_name"
    assert props["snakeCaseName"]["x-proto-number"] == 16


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("i32", [0, -(2**31), 2**31 - 1], [2**31, "1", 1.5]),
        ("s32", [-5], [-(2**31) - 1]),
        ("u32", [0, 2**32 - 1], [-1, 2**32]),
        ("f32", [7], [-1]),
        ("i64", ["-123", "9223372036854775807", 42], ["12a", "", 1.5, True]),
        ("s64", ["-1"], ["- 1"]),
        ("u64", ["18446744073709551615", 5], ["-1", -1]),
        ("f64", ["0"], ["x"]),
        ("f", [1.5, 0, "NaN", "Infinity", "-Infinity"], ["nan", True]),
        ("d", [-2.25], ["inf"]),
        ("b", [True, False], ["true", 0]),
        ("s", ["", "hi"], [1, None]),
        ("raw", ["aGVsbG8=", "aGVsbG8", "a-_b"], ["not base64!", 5]),
    ],
)
def test_scalars(env: Env, field: str, good: list[Any], bad: list[Any]) -> None:
    v = env.validator("demo.v1.Scalars")
    for value in good:
        assert accepts(v, {field: value}), (field, value)
    for value in bad:
        assert not accepts(v, {field: value}), (field, value)


def test_scalar_annotations(env: Env) -> None:
    props = env.schema("demo.v1.Scalars")["properties"]
    assert props["i64"]["x-proto-type"] == "int64"
    assert props["i64"]["x-proto-kind"] == "scalar"
    assert props["i64"]["x-proto-label"] == "optional"
    assert props["raw"]["contentEncoding"] == "base64"
    assert props["i32"]["type"] == "integer"
    assert props["i64"]["type"] == ["string", "integer"]


def test_enum(env: Env) -> None:
    docs = env.documents("demo.v1.Outer")
    color = docs["demo.v1.Outer"]["properties"]["color"]
    assert color["$ref"] == "demo.v1.Color"
    assert color["x-proto-type"] == "demo.v1.Color"
    assert color["x-proto-kind"] == "enum"
    enum_def = docs["demo.v1.Color"]
    assert enum_def["$id"] == enum_def["title"] == "demo.v1.Color"
    assert enum_def["description"] == "Colours."
    assert enum_def["x-proto-enum-values"] == [
        {"name": "COLOR_UNSPECIFIED", "number": 0, "description": "Not set."},
        {"name": "COLOR_RED", "number": 1, "description": ""},
    ]
    v = env.validator("demo.v1.Outer")
    assert accepts(v, {"color": "COLOR_RED"})
    assert accepts(v, {"color": 1})
    assert not accepts(v, {"color": "COLOR_BLUE"})
    assert not accepts(v, {"color": True})


def test_nested_message_and_reachable_defs_only(env: Env) -> None:
    docs = env.documents("demo.v1.Outer")
    schema = docs["demo.v1.Outer"]
    assert set(docs) == {"demo.v1.Outer", "demo.v1.Outer.Inner", "demo.v1.Color"}
    inner = docs["demo.v1.Outer.Inner"]
    assert inner["title"] == "demo.v1.Outer.Inner"
    assert inner["description"] == "Inside."
    assert inner["type"] == "object"
    assert inner["additionalProperties"] is False
    assert schema["properties"]["inner"]["$ref"] == "demo.v1.Outer.Inner"
    assert schema["properties"]["inner"]["x-proto-kind"] == "message"


def test_repeated(env: Env) -> None:
    schema = env.schema("demo.v1.Collections")
    ids = schema["properties"]["ids"]
    assert ids["type"] == "array"
    assert ids["x-proto-label"] == "repeated"
    v = env.validator("demo.v1.Collections")
    assert accepts(v, {"ids": ["1", 2, "-3"], "colors": ["COLOR_RED", 0]})
    assert not accepts(v, {"ids": "1"})
    assert not accepts(v, {"ids": ["x"]})
    assert not accepts(v, {"colors": ["PURPLE"]})


def test_maps(env: Env) -> None:
    schema = env.schema("demo.v1.Collections")
    by_id = schema["properties"]["byId"]
    assert by_id["type"] == "object"
    assert by_id["x-proto-label"] == "map"
    assert by_id["x-proto-map-key"] == "int32"
    assert by_id["x-proto-map-value"] == "string"
    times = schema["properties"]["times"]
    assert times["x-proto-wkt"] == "google.protobuf.Timestamp"
    assert times["x-proto-map-value"] == "google.protobuf.Timestamp"
    docs = env.documents("demo.v1.Collections")
    assert "demo.v1.Outer.Inner" in docs
    assert not any(name.startswith("google.protobuf.") for name in docs)
    assert not any("MapEntry" in name for name in docs)  # map entries are inlined
    v = env.validator("demo.v1.Collections")
    assert accepts(v, {"byId": {"1": "a", "-2": "b"}})
    assert not accepts(v, {"byId": {"x": "a"}})
    assert not accepts(v, {"byId": {"1": 2}})
    assert accepts(v, {"flags": {"true": "COLOR_RED", "false": 0}})
    assert not accepts(v, {"flags": {"yes": "COLOR_RED"}})
    assert accepts(v, {"inners": {"k": {"label": "x"}}})
    assert not accepts(v, {"inners": {"k": {"label": 1}}})
    assert accepts(v, {"times": {"7": "2024-01-02T03:04:05Z"}})
    assert not accepts(v, {"times": {"-7": "2024-01-02T03:04:05Z"}})
    assert not accepts(v, {"times": {"7": "yesterday"}})


def test_oneof(env: Env) -> None:
    schema = env.schema("demo.v1.Choice")
    assert schema["x-proto-oneofs"] == {"pick": ["text", "number", "outer"], "solo": ["only"]}
    assert schema["properties"]["text"]["x-proto-oneof"] == "pick"
    assert schema["properties"]["only"]["x-proto-oneof"] == "solo"
    assert "x-proto-oneof" not in schema["properties"]["maybe"]
    v = env.validator("demo.v1.Choice")
    assert accepts(v, {})
    assert accepts(v, {"text": "a"})
    assert accepts(v, {"outer": {"color": "COLOR_RED"}, "only": "x"})
    assert not accepts(v, {"text": "a", "number": 1})
    assert not accepts(v, {"text": "a", "number": 1, "outer": {}})


def test_proto3_optional_is_not_a_oneof(env: Env) -> None:
    schema = env.schema("demo.v1.Choice")
    assert "maybe" not in str(schema["x-proto-oneofs"])
    assert "_maybe" not in schema["x-proto-oneofs"]
    assert schema["properties"]["maybe"]["x-proto-label"] == "optional"
    v = env.validator("demo.v1.Choice")
    assert accepts(v, {"maybe": "x", "other": 2, "text": "t"})


WKT_CASES: list[tuple[str, list[Any], list[Any]]] = [
    (
        "ts",
        ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05+01:00"],
        ["2024-01-02", 1700000000, "2024-01-02 03:04:05Z"],
    ),
    ("dur", ["1s", "-1.5s", "0.000000001s"], ["1", "1m", 1]),
    ("st", [{}, {"a": [1, {"b": None}]}], [[], "x", None]),
    ("val", [None, 1, "x", [1], {"a": True}], []),
    ("lv", [[], [1, "a", None, {}]], [{}, "x"]),
    (
        "any",
        [{"@type": "type.googleapis.com/demo.v1.Ping", "n": 1}],
        [{"n": 1}, {"@type": 5}, "x"],
    ),
    ("mask", ["a.b,c", ""], [["a"], 1]),
    ("empty", [{}], [{"a": 1}, None]),
    ("dv", [1.5, "NaN", None], ["x", True]),
    ("fv", [0, None, "-Infinity"], ["1.5x"]),
    ("i64v", ["-5", 5, None], ["x", 1.5]),
    ("u64v", ["5", None], ["-5"]),
    ("i32v", [5, None], ["5", 2**31]),
    ("u32v", [5, None], [-1]),
    ("bv", [True, None], ["true"]),
    ("sv", ["x", None], [1]),
    ("bytesv", ["aGk=", None], ["!!", 1]),
    ("nul", [None], [0, "NULL_VALUE_X"]),
    ("stamps", [["2024-01-02T03:04:05Z"]], [["nope"]]),
]


@pytest.mark.parametrize(("field", "good", "bad"), WKT_CASES)
def test_well_known_types(env: Env, field: str, good: list[Any], bad: list[Any]) -> None:
    v = env.validator("demo.v1.Wkts")
    for value in good:
        assert accepts(v, {field: value}), (field, value)
    for value in bad:
        assert not accepts(v, {field: value}), (field, value)


def test_wkts_are_inlined_and_annotated(env: Env) -> None:
    schema = env.schema("demo.v1.Wkts")
    assert set(env.documents("demo.v1.Wkts")) == {"demo.v1.Wkts"}
    props = schema["properties"]
    assert props["ts"]["format"] == "date-time"
    assert props["ts"]["x-proto-wkt"] == "google.protobuf.Timestamp"
    assert props["ts"]["x-proto-type"] == "google.protobuf.Timestamp"
    assert props["i64v"]["type"] == ["string", "integer", "null"]
    assert props["i32v"]["type"] == ["integer", "null"]
    assert props["nul"]["x-proto-wkt"] == "google.protobuf.NullValue"
    assert props["stamps"]["items"]["format"] == "date-time"


def test_comments_become_descriptions(env: Env) -> None:
    schema = env.schema("demo.v1.TreeNode")
    assert schema["description"] == "A tree node.\n\nSecond paragraph."
    assert schema["properties"]["value"]["description"] == "The node's value."
    assert "description" not in schema["properties"]["children"]
    parent = schema["properties"]["parent"]
    assert parent["deprecated"] is True
    assert parent["description"] == "Old link."
    assert "deprecated" not in schema["properties"]["value"]


def test_without_comments(env: Env) -> None:
    desc = env.pool.FindMessageTypeByName("demo.v1.TreeNode")
    schema = message_schema(desc, {})
    assert "description" not in schema
    assert "description" not in schema["properties"]["value"]


def test_proto2_required_and_closed_enum(env: Env) -> None:
    schema = env.schema("legacy.Req")
    assert schema["required"] == ["id"]
    assert schema["properties"]["id"]["x-proto-label"] == "required"
    assert schema["properties"]["level"]["x-proto-label"] == "optional"
    v = env.validator("legacy.Req")
    assert accepts(v, {"id": "a", "level": "HIGH"})
    assert accepts(v, {"id": "a", "level": 5})
    assert not accepts(v, {"id": "a", "level": 2})
    assert not accepts(v, {"level": "LOW"})


@pytest.mark.parametrize("name", ALL_MESSAGES)
def test_protobuf_json_output_validates(env: Env, name: str) -> None:
    desc = env.pool.FindMessageTypeByName(name)
    cls = message_factory.GetMessageClass(desc)
    samples = {
        "demo.v1.TreeNode": {"value": "r", "children": [{"value": "c", "children": [{}]}]},
        "demo.v1.Ping": {"n": 1, "pong": {"ping": {"n": 2}}},
        "demo.v1.Scalars": {
            "i32": -1,
            "u32": 3,
            "i64": "-9",
            "u64": "18446744073709551615",
            "f": "NaN",
            "d": 2.5,
            "b": True,
            "s": "x",
            "raw": "aGk=",
            "snakeCaseName": "y",
        },
        "demo.v1.Collections": {
            "ids": ["1"],
            "byId": {"3": "c"},
            "flags": {"true": "COLOR_RED"},
            "inners": {"k": {"label": "l"}},
            "times": {"9": "2024-01-01T00:00:00Z"},
        },
        "demo.v1.Choice": {"outer": {"inner": {"label": "x"}}, "maybe": "", "only": "o"},
        "demo.v1.Wkts": {
            "ts": "2024-01-01T00:00:00.5Z",
            "dur": "-3.25s",
            "st": {"a": [1, None]},
            "val": {"x": "y"},
            "lv": [True],
            "mask": "a.b,c",
            "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"},
            "empty": {},
            "dv": "Infinity",
            "i64v": "7",
            "u64v": "8",
            "i32v": 9,
            "u32v": 10,
            "bv": False,
            "sv": "s",
            "bytesv": "aGk=",
            "nul": None,
        },
        "legacy.Req": {"id": "x", "level": "LOW"},
    }
    msg = cls()
    json_format.ParseDict(samples.get(name, {}), msg, descriptor_pool=env.pool)
    dumped = json_format.MessageToDict(msg, descriptor_pool=env.pool)
    assert accepts(env.validator(name), dumped), dumped


def test_generation_scales_linearly(tmp_path: Path) -> None:
    count = 1500
    body = "".join(
        f"message M{i} {{ M{i + 1} next = 1; repeated M0 back = 2; map<string, M{i + 1}> m = 3; }}"
        "\n"
        for i in range(count)
    )
    body += f"message M{count} {{ string leaf = 1; }}\n"
    _, pool = compile_protos(tmp_path, {"big.proto": 'syntax = "proto3";\npackage big;\n' + body})
    desc = pool.FindMessageTypeByName("big.M0")
    start = time.perf_counter()
    docs = dict(schema_documents([desc], {}))
    elapsed = time.perf_counter() - start
    assert len(docs) == count + 1
    assert docs["big.M7"]["properties"]["back"]["items"] == {"$ref": "big.M0"}
    assert docs["big.M7"]["properties"]["next"]["$ref"] == "big.M8"
    assert elapsed < 2.0


def chain(count: int) -> descriptor_pool.DescriptorPool:
    """A pool with `chain.M0` → `chain.M1` → … → `chain.M{count-1}`, each with an enum."""
    fd = descriptor_pb2.FileDescriptorProto(name="chain.proto", package="chain", syntax="proto3")
    fd.enum_type.add(name="E").value.add(name="E_UNSPECIFIED", number=0)
    for i in range(count):
        msg = fd.message_type.add(name=f"M{i}")
        msg.field.add(
            name="e",
            number=1,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
            type_name=".chain.E",
            json_name="e",
        )
        if i + 1 < count:
            msg.field.add(
                name="next",
                number=2,
                json_name="next",
                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                type_name=f".chain.M{i + 1}",
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return pool


def test_each_type_is_defined_once_so_the_size_is_linear() -> None:
    sizes = {}
    for count in (100, 1000):
        pool = chain(count)
        docs = dict(schema_documents([pool.FindMessageTypeByName("chain.M0")], {}))
        assert set(docs) == {f"chain.M{i}" for i in range(count)} | {"chain.E"}
        text = json.dumps(docs)
        assert text.count('"title":"chain.E"') + text.count('"title": "chain.E"') == 1
        sizes[count] = len(text)
    assert sizes[1000] / sizes[100] < 15


def test_known_types_are_neither_repeated_nor_followed() -> None:
    pool = chain(50)
    first = dict(schema_documents([pool.FindMessageTypeByName("chain.M40")], {}))
    assert set(first) == {f"chain.M{i}" for i in range(40, 50)} | {"chain.E"}
    more = dict(schema_documents([pool.FindMessageTypeByName("chain.M30")], {}, known=first))
    assert set(more) == {f"chain.M{i}" for i in range(30, 40)}


def test_references_resolve_under_any_shared_base_uri(env: Env) -> None:
    """The `$id`s are relative: documents served from one base URI resolve one another."""
    base = "https://catalog.example/schemas/"
    docs = env.documents("demo.v1.Collections")
    registry: Registry[Any] = Registry().with_resources(
        (base + name, Resource.from_contents(doc)) for name, doc in docs.items()
    )
    root = {**docs["demo.v1.Collections"], "$id": base + "demo.v1.Collections"}
    v = Draft202012Validator(root, registry=registry)
    assert accepts(v, {"inners": {"k": {"label": "x"}}, "colors": ["COLOR_RED"]})
    assert not accepts(v, {"inners": {"k": {"label": 1}}})
    assert not accepts(v, {"colors": ["PURPLE"]})
