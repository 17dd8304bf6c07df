"""Assertions of a saved request, checked against its call's outcome.

Kinds: `status` (the status code, by name or number), `field` (a JSONPath into the
response: the message of a call with one response, the list of messages of a server
stream), `header` / `trailer` (by name, case-insensitive), `duration` (milliseconds).
JSONPath is RFC 9535 as implemented by the maintained `python-jsonpath` package; paths
and expected values are bounded when saved (`shapes`), and a big response is checked
in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonpath

from ..gen.catalog.v1 import catalog_pb
from ..gen.catalog.v1 import collections_pb as pb
from ..problems import Code

__all__ = ["Outcome", "check_all", "path_problem"]

_SHOWN = 200
"""The most characters of an actual value a result shows."""
_OFF_LOOP = 64 * 1024
_MAX_DESCENDANTS = 1
"""The most `..` one JSONPath may hold: each more multiplies the work by the response's
size (`$..*..*..*..*..*` took 25 s on a 581-byte response)."""
_ENV = jsonpath.JSONPathEnvironment()
for _name in ("match", "search"):  # a user's regular expression can backtrack for hours
    _ENV.function_extensions.pop(_name, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a call gave, as assertions see it."""

    status_code: int
    messages: Sequence[str]
    """Response messages as JSON text."""
    headers: Sequence[catalog_pb.Header]
    trailers: Sequence[catalog_pb.Header]
    duration_ms: float
    streaming: bool
    """Whether the method streams responses (a field path then sees a list)."""


def _short(value: Any, as_json: bool = False) -> str:
    text = (
        value if isinstance(value, str) and not as_json else json.dumps(value, ensure_ascii=False)
    )
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _expected(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # proto3 JSON writes 64-bit integers as strings
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(
            actual == expected
            or (_number(actual) is not None and _number(actual) == _number(expected))
        )
    if op == "ne":
        return not _compare("eq", actual, expected)
    if op == "contains":
        if isinstance(actual, list):
            return expected in actual
        if isinstance(actual, dict):
            return str(expected) in actual
        return str(expected) in str(actual)
    a, e = _number(actual), _number(expected)
    if a is None or e is None:
        return False
    return {"lt": a < e, "le": a <= e, "gt": a > e, "ge": a >= e}.get(op, False)


def _status(a: pb.Assertion, out: Outcome) -> tuple[bool, str]:
    actual = (
        Code(out.status_code).name
        if out.status_code in Code._value2member_map_
        else str(out.status_code)
    )
    want = a.value.strip().upper().replace("CANCELED", "CANCELLED")
    try:
        code = int(want) if want.lstrip("-").isdigit() else Code[want].value
    except KeyError:
        return False, f"{actual} (expected value {a.value[:50]!r} is no status code)"
    ok = out.status_code == code
    return (ok if a.op == "eq" else not ok if a.op == "ne" else False), actual


def _document(out: Outcome) -> Any:
    values = [json.loads(m) for m in out.messages]
    if out.streaming:
        return values
    return values[0] if values else None


def path_problem(path: str) -> str:
    """Why a JSONPath may not be used (its cost is not bounded by the response), or ""."""
    if path.count("..") > _MAX_DESCENDANTS:
        return f"holds more than {_MAX_DESCENDANTS} descendant segment (..)"
    if "=~" in path:
        return "uses a regular expression (=~), which is not supported"
    return ""


@functools.lru_cache(maxsize=1024)
def _compiled(path: str) -> Any:
    """A JSONPath compiled once (paths are bounded in length when saved)."""
    return _ENV.compile(path)


def _field(a: pb.Assertion, out: Outcome) -> tuple[bool, str]:
    problem = path_problem(a.path)
    if problem:
        return False, f"{a.path[:100]!r} {problem}"
    try:
        query = _compiled(a.path.strip() or "$")
    except jsonpath.JSONPathError:
        return False, f"{a.path[:100]!r} is not a valid JSONPath"
    document = _document(out)
    if document is None:
        return a.op == "absent", "no response message"
    try:
        found = query.findall(document)
    except jsonpath.JSONPathError:
        return False, f"{a.path[:100]!r} cannot be evaluated on this response"
    if a.op in ("exists", "absent"):
        return (bool(found) == (a.op == "exists")), f"{len(found)} match(es)"
    if not found:
        return False, "no match"
    actual = found[0] if len(found) == 1 else found
    return _compare(a.op, actual, _expected(a.value)), _short(actual, as_json=True)


def _header(a: pb.Assertion, pairs: Sequence[catalog_pb.Header]) -> tuple[bool, str]:
    name = a.path.strip().lower()
    values = [h.value for h in pairs if h.key.lower() == name]
    if a.op in ("exists", "absent"):
        return bool(values) == (a.op == "exists"), f"{len(values)} value(s)"
    if not values:
        return False, "not sent"
    actual = ", ".join(values)
    if a.op in ("eq", "ne"):
        return (actual == a.value) == (a.op == "eq"), _short(actual)
    return _compare(a.op, actual, a.value), _short(actual)


def _check(a: pb.Assertion, out: Outcome) -> pb.AssertionResult:
    if a.kind == "status":
        passed, actual = _status(a, out)
    elif a.kind == "field":
        passed, actual = _field(a, out)
    elif a.kind in ("header", "trailer"):
        passed, actual = _header(a, out.headers if a.kind == "header" else out.trailers)
    elif a.kind == "duration":
        passed, actual = (
            _compare(a.op, out.duration_ms, _expected(a.value)),
            f"{out.duration_ms:.1f} ms",
        )
    else:
        passed, actual = False, f"unknown kind {a.kind[:20]!r}"
    return pb.AssertionResult(assertion=a, passed=passed, actual=actual)


def _check_list(assertions: Sequence[pb.Assertion], out: Outcome) -> list[pb.AssertionResult]:
    return [_check(a, out) for a in assertions]


async def check_all(assertions: Sequence[pb.Assertion], out: Outcome) -> list[pb.AssertionResult]:
    """Every assertion's result (in a worker thread when the response is big)."""
    if sum(len(m) for m in out.messages) > _OFF_LOOP:
        return await asyncio.to_thread(_check_list, assertions, out)
    return _check_list(assertions, out)
