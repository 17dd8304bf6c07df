"""Pure parts of saved requests: files round trip byte for byte (the shipped example
through a real database too), secrets never reach files, `{{variables}}` are one bounded
pass, and assertions compare as documented."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import ANONYMOUS
from connectrpc_catalog.problems import Code, RequestError
from connectrpc_catalog.saved.assertions import Outcome, check_all
from connectrpc_catalog.saved.files import FORMAT, export_files, import_files, read_folder
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store
from connectrpc_catalog.saved.variables import MAX_RESULT, substitute

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "collections" / "weather"


def test_shipped_example_round_trips_through_a_database(tmp_path: Path) -> None:
    files = read_folder(EXAMPLE)
    imported = import_files(files)
    assert [r.name for r in imported.requests] == [
        "Lisbon right now",
        "Three days for Tokyo",
        "Four observations from Lisbon",
    ]

    async def through_store() -> list[pb.ExportedFile]:
        store = await Store.open(f"sqlite:///{tmp_path / 'x.db'}", Sealer(""))
        try:
            made = await store.import_collection(ANONYMOUS, "", imported)
            info, reqs, envs = await store.get_collection(ANONYMOUS, made.id)
            return export_files(info, reqs, envs)
        finally:
            await store.close()

    again = asyncio.run(through_store())
    assert [(f.path, f.content) for f in again] == [(f.path, f.content) for f in files]


def test_secrets_never_reach_files() -> None:
    env = pb.Environment(
        name="staging",
        variables=[
            pb.Variable(name="host", value="api:443"),
            pb.Variable(name="password", value="", secret=True, value_set=True),
        ],
        auth=pb.AuthHelper(
            kind="oauth2_client_credentials", client_id="ci", secrets_set=["client_secret"]
        ),
    )
    files = export_files(pb.Collection(name="c"), [], [env])
    text = next(f.content for f in files if f.path == "environments/staging.json")
    assert '"secret": true' in text and "client_secret" not in text and "value_set" not in text
    forged = [f for f in files if f.path != "environments/staging.json"] + [
        pb.ExportedFile(
            path="environments/x.json",
            content='{"name": "x", "auth": {"kind": "bearer", "token": "leaked"}}',
        )
    ]
    with pytest.raises(RequestError) as refused:
        import_files(forged)
    assert "secrets do not belong in files" in refused.value.message


def test_import_refuses_what_is_not_a_collection() -> None:
    cases = [
        ([], "collection.json is missing"),
        ([pb.ExportedFile(path="collection.json", content="{")], "is not JSON"),
        ([pb.ExportedFile(path="collection.json", content='{"format": "x"}')], "format must be"),
        (
            [
                pb.ExportedFile(
                    path="collection.json",
                    content=json.dumps({"format": FORMAT, "requests": ["requests/a.json"]}),
                )
            ],
            "not among the files",
        ),
    ]
    for files, text in cases:
        with pytest.raises(RequestError) as refused:
            import_files(files)
        assert text in refused.value.message


def test_substitution_is_one_bounded_pass() -> None:
    values = {"a": "{{b}}", "b": "x", "big": "y" * (MAX_RESULT // 2 + 1)}
    assert substitute("<{{a}}> {{ b }}", values, "f") == "<{{b}}> x"  # never expanded again
    with pytest.raises(RequestError) as unknown:
        substitute("{{nope}}", values, "endpoint")
    assert unknown.value.code is Code.FAILED_PRECONDITION and "{{nope}}" in unknown.value.message
    with pytest.raises(RequestError) as big:
        substitute("{{big}}{{big}}", values, "body")
    assert big.value.code is Code.RESOURCE_EXHAUSTED
    with pytest.raises(RequestError) as many:
        substitute("{{b}}" * 1001, values, "body")
    assert "more than 1000" in many.value.message


def _outcome(messages: list[str], streaming: bool = False) -> Outcome:
    return Outcome(
        status_code=5,
        messages=messages,
        headers=[catalog_pb.Header(key="X-Station", value="LIS-001")],
        trailers=[],
        duration_ms=12.5,
        streaming=streaming,
    )


async def test_assertions_compare_as_documented() -> None:
    A = pb.Assertion
    checks = [
        (A(kind="status", op="eq", value="NOT_FOUND"), True),
        (A(kind="status", op="eq", value="5"), True),
        (A(kind="status", op="ne", value="OK"), True),
        (A(kind="status", op="eq", value="BOGUS"), False),
        (A(kind="field", path="$.count", op="gt", value="3"), True),  # "7" is an int64 string
        (A(kind="field", path="$.count", op="eq", value="7"), True),
        (A(kind="field", path="$.tags", op="contains", value='"b"'), True),
        (A(kind="field", path="$.name", op="contains", value="isb"), True),
        (A(kind="field", path="$.missing", op="absent"), True),
        (A(kind="field", path="$.name", op="eq", value='"Paris"'), False),
        (A(kind="field", path="$[[", op="exists"), False),
        (A(kind="header", path="x-station", op="eq", value="LIS-001"), True),
        (A(kind="trailer", path="x-station", op="exists"), False),
        (A(kind="duration", op="lt", value="12"), False),
    ]
    out = _outcome(['{"count": "7", "tags": ["a", "b"], "name": "Lisbon"}'])
    results = await check_all([c for c, _ in checks], out)
    assert [r.passed for r in results] == [want for _, want in checks]
    assert results[9].actual == '"Lisbon"'
    stream = await check_all(
        [A(kind="field", path="$[1].n", op="eq", value="2")],
        _outcome(['{"n": 1}', '{"n": 2}'], True),
    )
    assert stream[0].passed


def test_run_command_overrides_from_flags_and_environment() -> None:
    """--var and CONNECTRPC_CATALOG_VAR_* fill what exported files leave out."""
    from connectrpc_catalog.saved.runner import _overrides, _with_overrides
    from connectrpc_catalog.saved.variables import Resolved

    env = Resolved(
        name="staging",
        variables={"host": "api:443", "api-token": ""},
        auth=pb.AuthHelper(kind="oauth2_client_credentials", client_id="ci"),
    )
    given = _overrides(
        ["host=127.0.0.1:50051", "extra=1"],
        {
            "CONNECTRPC_CATALOG_VAR_API_TOKEN": "tok-from-ci",
            "CONNECTRPC_CATALOG_VAR_AUTH_CLIENT_SECRET": "secret-from-ci",
            "UNRELATED": "x",
        },
    )
    out = _with_overrides(env, given)
    assert out.variables["host"] == "127.0.0.1:50051" and out.variables["extra"] == "1"
    assert out.variables["api-token"] == "tok-from-ci"
    assert out.auth.client_secret == "secret-from-ci" and "secret-from-ci" in out.secret_values
    assert "UNRELATED" not in out.variables
    with pytest.raises(RequestError):
        _overrides(["no-equals-sign"], {})
