"""Tests for connectrpc_catalog.comments."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectrpc_catalog.comments import index_comments, normalize_comment
from tests.protohelp import compile_protos

PROTO = """\
syntax = "proto3";

// Detached comment: must be ignored.

package demo.v1;

// The greeter service.
//
// Second paragraph.
service Greeter {
  // Says hello.
  rpc SayHello(HelloRequest) returns (HelloReply);
  rpc NoComment(HelloRequest) returns (HelloReply);
}

// A request.
message HelloRequest {
  // Who to greet.
  string name = 1;
  int32 count = 2; // Trailing only.
  // Pick one.
  oneof choice {
    // The A branch.
    string a = 3;
    string b = 4;
  }
  // Nested thing.
  message Inner {
    // Deep field.
    bool deep = 1;
    // Deeper enum.
    enum Mode {
      // Unset mode.
      MODE_UNSPECIFIED = 0;
      MODE_FAST = 1; // Go fast.
    }
  }
  Inner inner = 5;
}

message HelloReply {
  /* Block comment
   * spanning lines. */
  string message = 1;
}

// Colours.
enum Color {
  // No colour.
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
}
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    fds, _ = compile_protos(tmp_path_factory.mktemp("c"), {"demo/v1/demo.proto": PROTO})
    return index_comments(fds.file)


def test_services_and_methods(index: dict[str, str]) -> None:
    assert index["demo.v1.Greeter"] == "The greeter service.\n\nSecond paragraph."
    assert index["demo.v1.Greeter.SayHello"] == "Says hello."
    assert "demo.v1.Greeter.NoComment" not in index


def test_messages_fields_and_oneofs(index: dict[str, str]) -> None:
    assert index["demo.v1.HelloRequest"] == "A request."
    assert index["demo.v1.HelloRequest.name"] == "Who to greet."
    assert index["demo.v1.HelloRequest.count"] == "Trailing only."
    assert index["demo.v1.HelloRequest.choice"] == "Pick one."
    assert index["demo.v1.HelloRequest.a"] == "The A branch."
    assert "demo.v1.HelloRequest.b" not in index


def test_nested_names(index: dict[str, str]) -> None:
    assert index["demo.v1.HelloRequest.Inner"] == "Nested thing."
    assert index["demo.v1.HelloRequest.Inner.deep"] == "Deep field."
    assert index["demo.v1.HelloRequest.Inner.Mode"] == "Deeper enum."
    assert index["demo.v1.HelloRequest.Inner.Mode.MODE_UNSPECIFIED"] == "Unset mode."
    assert index["demo.v1.HelloRequest.Inner.Mode.MODE_FAST"] == "Go fast."


def test_enums_keyed_under_enum_name(index: dict[str, str]) -> None:
    assert index["demo.v1.Color"] == "Colours."
    assert index["demo.v1.Color.COLOR_UNSPECIFIED"] == "No colour."
    assert "demo.v1.COLOR_UNSPECIFIED" not in index


def test_block_comment_and_no_detached(index: dict[str, str]) -> None:
    assert index["demo.v1.HelloReply.message"].splitlines()[0] == "Block comment"
    assert all("Detached" not in text for text in index.values())


def test_only_names_from_the_files(index: dict[str, str]) -> None:
    assert all(name.startswith("demo.v1.") for name in index)


def test_leading_wins_over_trailing(tmp_path: Path) -> None:
    proto = 'syntax = "proto3";\nmessage M {\n  // Lead.\n  int32 x = 1; // Trail.\n}\n'
    fds, _ = compile_protos(tmp_path, {"m.proto": proto})
    assert index_comments(fds.file) == {"M.x": "Lead."}


def test_no_source_info_gives_nothing(tmp_path: Path) -> None:
    fds, _ = compile_protos(tmp_path, {"m.proto": PROTO})
    for file in fds.file:
        file.ClearField("source_code_info")
    assert index_comments(fds.file) == {}


def test_normalize_comment() -> None:
    raw = "\n Para one\n line two  \n\n Para two\n\n"
    assert normalize_comment(raw) == "Para one\nline two\n\nPara two"
    assert normalize_comment("   indented") == "  indented"
    assert normalize_comment("\n \n") == ""


def test_many_messages_is_fast(tmp_path: Path) -> None:
    body = "".join(
        f"// Doc {i}.\nmessage M{i} {{\n  // F {i}.\n  int32 f = 1;\n}}\n" for i in range(3000)
    )
    fds, _ = compile_protos(tmp_path, {"big.proto": 'syntax = "proto3";\npackage big;\n' + body})
    start = time.perf_counter()
    index = index_comments(fds.file)
    assert time.perf_counter() - start < 2.0
    assert len(index) == 6000
    assert index["big.M2999.f"] == "F 2999."
