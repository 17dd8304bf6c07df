"""The request form's example meets buf.validate rules it has to solve: `string.pattern`
(with the field's other string rules) and `map.min_pairs` with key and value rules.

Real Chromium → catalog → a real grpcio upstream that checks every request with
protovalidate (the reference implementation of the rules), so "valid" is the server's
word, not the UI's. The generator itself is exercised in the built page, case by case.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

pytest.importorskip("playwright.sync_api", reason="end-to-end tests need: pip install playwright")
pytest.importorskip("protovalidate", reason="the upstream checks the rules with protovalidate")

import protovalidate
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from playwright.sync_api import Browser, Page, expect

from .conftest import ROOT, PageErrors, new_page, run_catalog
from .test_ui import set_target

VENDOR = ROOT / "src" / "connectrpc_catalog" / "sources" / "vendor"

PREFILL = r"""syntax = "proto3";
package prefill.v1;
import "buf/validate/validate.proto";

service Accounts {
  rpc Create(Account) returns (Account);
  rpc Odd(OddRequest) returns (OddRequest);
}
message Account {
  string slug = 1 [(buf.validate.field).string = {pattern: "^[a-z][a-z0-9-]{2,30}$", min_len: 8}];
  string order_id = 2 [(buf.validate.field).string.pattern = "^ord-[0-9]{6}$"];
  string currency = 3 [(buf.validate.field).string = {pattern: "^[A-Z]{3}$", len: 3}];
  string region = 4 [(buf.validate.field).string.pattern = "^(eu|us)-(west|east)-[1-9]$"];
  string day = 5 [(buf.validate.field).string = {
    pattern: "^\\d{4}-\\d{2}-\\d{2}$", min_len: 10, max_len: 10}];
  // The ticket, e.g. "T-42".
  string ticket = 6 [(buf.validate.field).string.pattern = "^T-[0-9]+$"];
  // A label, e.g. "Nope!" (it does not match: the pattern's own example is used).
  string label = 7 [(buf.validate.field).string = {pattern: "^lbl_[a-z]{2,}$", max_len: 12}];
  string sku = 8 [(buf.validate.field).string = {pattern: "^[A-Z]{2}-\\d{3}$", example: "AB-123"}];
  string code = 9 [(buf.validate.field).string.pattern = "(?i)^x[a-f]{2}\\z"];
  repeated string tags = 10 [(buf.validate.field).repeated = {
    min_items: 3, unique: true, items: {string: {pattern: "^[a-z]{2}$"}}}];
  map<string, int32> quotas = 11 [(buf.validate.field).map = {
    min_pairs: 2, keys: {string: {pattern: "^q-[a-z]+$", min_len: 4}}, values: {int32: {gte: 5}}}];
  map<int32, string> by_id = 12 [(buf.validate.field).map = {
    min_pairs: 2, keys: {int32: {gt: 100}}, values: {string: {pattern: "^v[0-9]$"}}}];
  string prefixed = 13 [(buf.validate.field).string = {pattern: "[0-9]{3}", prefix: "id-"}];
  string host = 14 [(buf.validate.field).string = {
    pattern: "^(?:[a-z0-9]+\\.)+[a-z]{2,}$", max_len: 20}];
}
// Patterns the generator does not solve (RE2 would not compile them either).
message OddRequest {
  string twice = 1 [(buf.validate.field).string.pattern = "^(a)\\1$"];
  string ahead = 2 [(buf.validate.field).string.pattern = "^(?=x)x+$"];
}
"""

EXPECTED = {
    "slug": "aaaaaaaa",  # "aaa", widened to min_len 8 by repeating [a-z0-9-]
    "orderId": "ord-000000",
    "currency": "AAA",
    "region": "eu-west-1",
    "day": "0000-00-00",
    "ticket": "T-42",  # the comment's example matches: kept
    "label": "lbl_aa",  # the comment's example does not: made from the pattern
    "sku": "AB-123",  # the buf.validate example
    "code": "xaa",  # (?i) and \z read as JavaScript spells them
    "tags": ["aa", "ab", "ac"],  # distinct, as unique asks
    "quotas": {"q-aa": 5, "q-ab": 5},
    "byId": {"101": "v0", "102": "v0"},
    "prefixed": "id-000",  # the unanchored pattern, then the prefix
    "host": "a.aa",
}


def compiled_pool(folder: Path, out: Path) -> descriptor_pool.DescriptorPool:
    """The proto compiled by protoc (with the shipped buf/validate), as a descriptor pool."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{folder}",
            f"-I{VENDOR}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            "prefill/v1/prefill.proto",
        ],
        check=True,
        capture_output=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return pool


class ValidatingUpstream:
    """A grpcio server for prefill.v1.Accounts that refuses what protovalidate refuses."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self.account = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("prefill.v1.Account")
        )
        self.validator = protovalidate.Validator()
        self.received: list[dict[str, Any]] = []
        self.violations: list[str] = []

    def create(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        msg = self.account.FromString(request)
        self.received.append(json_format.MessageToDict(msg))
        found = self.validator.collect_violations(msg)
        if found:
            self.violations.extend(f"{v.proto.rule_id}: {v.proto.message}" for v in found)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(self.violations))
        return request


@contextlib.contextmanager
def validating_upstream(
    pool: descriptor_pool.DescriptorPool,
) -> Iterator[tuple[str, ValidatingUpstream]]:
    upstream = ValidatingUpstream(pool)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "prefill.v1.Accounts", {"Create": grpc.unary_unary_rpc_method_handler(upstream.create)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", upstream
    finally:
        server.stop(0)


def json_body(page: Page) -> dict[str, Any]:
    page.get_by_role("tab", name="JSON").click()
    body: dict[str, Any] = json.loads(page.get_by_test_id("request-json").input_value())
    return body


def test_prefill_solves_patterns_and_map_pairs_and_protovalidate_agrees(
    browser: Browser, page_errors: PageErrors, tmp_path: Path
) -> None:
    protos = tmp_path / "protos"
    (protos / "prefill" / "v1").mkdir(parents=True)
    (protos / "prefill" / "v1" / "prefill.proto").write_text(PREFILL)
    pool = compiled_pool(protos, tmp_path / "prefill.binpb")
    account = message_factory.GetMessageClass(pool.FindMessageTypeByName("prefill.v1.Account"))
    # The expectation itself passes protovalidate (the test's own yardstick is sound),
    # and the message before this change (patterns and maps unfilled) does not.
    validator = protovalidate.Validator()
    assert not validator.collect_violations(json_format.ParseDict(EXPECTED, account()))
    assert validator.collect_violations(json_format.ParseDict({"sku": "AB-123"}, account()))
    with (
        validating_upstream(pool) as (endpoint, upstream),
        run_catalog("--proto", str(protos)) as url,
    ):
        page = new_page(browser, page_errors)
        try:
            page.goto(url + "#/m/prefill.v1.Accounts/Create")
            expect(page.get_by_role("heading", level=1, name="Create")).to_be_visible()
            set_target(page, endpoint)
            validation = page.get_by_test_id("validation")
            expect(validation).to_contain_text("Valid")
            # The form shows the prefill …
            form = page.locator(".request-editor")
            expect(form.locator('[data-path="slug"]')).to_have_value("aaaaaaaa")
            expect(form.locator('[data-path="region"]')).to_have_value("eu-west-1")
            expect(form.get_by_label("quotas key 1")).to_have_value("q-aa")
            expect(form.get_by_label("quotas key 2")).to_have_value("q-ab")
            # … and so does the JSON view: the same example, exactly.
            body = json_body(page)
            assert body == EXPECTED, body
            expect(validation).to_contain_text("Valid")
            # protovalidate, in the catalog and then in the upstream, accepts it as it is.
            page.get_by_test_id("send").click()
            expect(page.get_by_test_id("status")).to_have_text("0 OK")
            assert upstream.violations == [], upstream.violations
            assert upstream.received == [EXPECTED], upstream.received
            # The client-side check knows map key rules too: a bad key is refused.
            page.get_by_test_id("request-json").fill(
                json.dumps({**EXPECTED, "quotas": {"Q": 5, "q-ab": 1}})
            )
            expect(validation).to_contain_text('invalid key "Q"')
            expect(validation).to_contain_text("(and 1 more)")  # the value 1 < 5
            page.get_by_role("button", name="Reset to example").click()
            expect(validation).to_contain_text("Valid")
            assert json_body(page) == EXPECTED
        finally:
            page.context.close()
    assert not page_errors, "\n".join(page_errors)


def test_an_unsolvable_pattern_keeps_the_default_and_the_page_works(
    browser: Browser, page_errors: PageErrors, tmp_path: Path
) -> None:
    (tmp_path / "prefill" / "v1").mkdir(parents=True)
    (tmp_path / "prefill" / "v1" / "prefill.proto").write_text(PREFILL)
    with run_catalog("--proto", str(tmp_path)) as url:
        page = new_page(browser, page_errors)
        try:
            page.goto(url + "#/m/prefill.v1.Accounts/Odd")
            expect(page.get_by_role("heading", level=1, name="Odd")).to_be_visible()
            assert json_body(page) == {"twice": "", "ahead": ""}
            # JavaScript compiles both (RE2 would not): the UI says the default does not match.
            expect(page.get_by_test_id("validation")).to_contain_text('"" does not match ^(a)\\1$')
            page.get_by_role("tab", name="Form").click()
            expect(page.locator('[data-path="twice"]')).to_have_value("")
        finally:
            page.context.close()
    assert not page_errors, "\n".join(page_errors)


# The generator itself, in the built page: (pattern, options, the example it makes).
GENERATOR_CASES: list[tuple[str, dict[str, int], str | None]] = [
    ("^[a-z][a-z0-9-]{2,30}$", {}, "aaa"),
    ("^[a-z][a-z0-9-]{2,30}$", {"minLen": 5, "maxLen": 8}, "aaaaa"),
    ("^[a-z][a-z0-9-]{2,3}$", {"minLen": 6}, "aaaa"),  # cannot widen past {2,3}
    ("^[a-z]{4}$", {"maxLen": 3}, None),  # cannot be that short
    ("^ord-[0-9]{6}$", {}, "ord-000000"),
    ("^(eu|us)-(west|east)-[1-9]$", {}, "eu-west-1"),
    (r"^\d{4}-\d{2}-\d{2}$", {}, "0000-00-00"),
    (r"^\w+@\w+\.com$", {}, "a@a.com"),
    (r"^[^/]+/[^/]+$", {}, "a/a"),
    (r"^\W\S\D\s$", {}, "-aa "),
    (r"^[_\-.]x$", {}, "-x"),
    (r"^a\.b\\c\-d$", {}, "a.b\\c-d"),
    (r"^a\@b\#$", {}, "a@b#"),  # RE2 escapes any punctuation; JavaScript's "u" flag does not
    (r"^[]a]{2}$", {}, "aa"),  # a "]" first in a class is literal in RE2
    (r"\bfoo\b", {}, "foo"),
    (r"\Afoo\z", {}, "foo"),
    ("^(?:ab)+?$", {"minLen": 5}, "ababab"),
    ("^(?P<word>ab)*c$", {}, "c"),
    ("^x{2,}$", {"minLen": 4}, "xxxx"),
    ("^x{3}$", {}, "xxx"),
    ("(?i)^abc$", {}, "abc"),
    ("^[[:upper:]][[:digit:]]$", {}, "A0"),
    ("^[a-z]+$", {"variant": 1}, "b"),
    ("^[a-z]+$", {"variant": 26}, "ba"),  # more than one letter holds: one more repetition
    ("^x$", {"variant": 1}, None),  # only one string matches
    (r"^(a)\1$", {}, None),  # backreference
    ("^(?=x)x$", {}, None),  # lookahead
    ("^(?<!x)y$", {}, None),  # lookbehind
    (r"^\p{Lu}+$", {}, None),  # Unicode class
    ("^a++$", {}, None),  # possessive: not RE2
    ("a**", {}, None),  # RE2 refuses a repeated repetition
    ("*a", {}, None),
    ("(ab", {}, None),
    ("ab)", {}, None),
    ("[a-", {}, None),
    ("[z-a]", {}, None),
    ("a{1001}", {}, None),  # over RE2's own bound
    ("(a{1000}){1000}", {}, None),  # bounded work
    ("x{257}", {}, None),  # longer than the output bound
    ("(" * 33 + "a" + ")" * 33, {}, None),  # deeper than the nesting bound
    ("(" * 32 + "a" + ")" * 32, {}, "a"),
    ("a" * 1001, {}, None),  # longer than the pattern bound
]


def test_the_generator_case_by_case(page: Page) -> None:
    page.wait_for_function("() => !!window.__catalogRegexample")
    results = page.evaluate(
        """(cases) => cases.map(([p, o]) => {
            const { regexExample, patternRegExp } = window.__catalogRegexample;
            const out = regexExample(p, o);
            const re = patternRegExp(p);
            return [out, out === null || re === null ? null : re.test(out)];
        })""",
        [[p, o] for p, o, _ in GENERATOR_CASES],
    )
    for (pattern, options, expected), (out, confirmed) in zip(
        GENERATOR_CASES, results, strict=True
    ):
        assert out == expected, (pattern, options, out)
        if out is not None:
            assert confirmed is True, (pattern, out)  # JavaScript's own RegExp agrees
    # RE2 spellings JavaScript lacks are read as JavaScript says them.
    flags = page.evaluate(
        """() => {
            const { patternRegExp } = window.__catalogRegexample;
            return [
                patternRegExp("(?i)^abc\\\\z").test("ABC"),
                patternRegExp("^[[:alpha:]]+$").test("ab"),
                patternRegExp("^[[:alpha:]]+$").test("a1"),
                patternRegExp("[[:^alpha:]]") === null,
                patternRegExp("(?P<x>a)").test("a"),
                patternRegExp("(") === null,
            ];
        }"""
    )
    assert flags == [True, True, False, True, True, True]
