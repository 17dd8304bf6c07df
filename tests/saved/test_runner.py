"""`connectrpc-catalog run` against the example server (the demo Weather API over gRPC,
schemas by its reflection): exported files with one passing and one failing assertion
(exit code 1, the summary, a JUnit file), and the same collection from a database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectrpc_catalog.demo.weather import DemoServer, start
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.saved.files import export_files, write_folder
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store

WHO = Identity(name="ci@example.com", groups=frozenset({"eng"}), via="oidc")


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


def _lisbon(assertions: list[pb.Assertion], name: str) -> pb.SavedRequest:
    return pb.SavedRequest(
        name=name,
        service="weather.v1.WeatherService",
        method="GetCurrentConditions",
        endpoint="{{host}}",
        transport=catalog_pb.Transport.GRPC,
        request_messages_json=['{"location": {"city": "{{city}}"}}'],
        assertions=assertions,
    )


PASSING = [
    pb.Assertion(kind="status", op="eq", value="OK"),
    pb.Assertion(kind="field", path="$.placeName", op="eq", value='"Lisbon"'),
    pb.Assertion(kind="header", path="x-skylark-station", op="exists"),
    pb.Assertion(kind="duration", op="ge", value="0"),  # the mechanism, not a time
]
FAILING = [pb.Assertion(kind="field", path="$.placeName", op="eq", value='"Paris"')]


async def _collection(url: str, address: str, with_failing: bool) -> tuple[Store, str]:
    store = await Store.open(url, Sealer(""))
    coll = await store.save_collection(WHO, pb.SaveCollectionRequest(name="Weather", team="eng"))
    requests = [_lisbon(PASSING, "Lisbon is Lisbon")]
    if with_failing:
        requests.append(_lisbon(FAILING, "Lisbon is Paris"))
    for req in requests:
        req.collection_id = coll.id
        await store.save_request(WHO, req)
    await store.save_environment(
        WHO,
        pb.Environment(
            collection_id=coll.id,
            name="local",
            variables=[
                pb.Variable(name="host", value=address),
                pb.Variable(name="city", value="Lisbon"),
            ],
        ),
    )
    return store, coll.id


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_exported_files(demo: DemoServer, tmp_path: Path) -> None:
    async def export() -> list[pb.ExportedFile]:
        store, cid = await _collection(f"sqlite:///{tmp_path / 'db.sqlite'}", demo.address, True)
        info, reqs, envs = await store.get_collection(WHO, cid)
        await store.close()
        return export_files(info, reqs, envs)

    folder = tmp_path / "weather"
    write_folder(folder, asyncio.run(export()))
    junit = tmp_path / "out" / "junit.xml"
    done = _run(str(folder), "--env", "local", "--junit", str(junit))
    assert done.returncode == 1, done.stderr
    assert "PASS Lisbon is Lisbon" in done.stdout
    assert "FAIL Lisbon is Paris" in done.stdout
    assert 'actual: "Lisbon"' in done.stdout
    assert done.stdout.rstrip().endswith("1 passed, 1 failed")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["Lisbon is Lisbon"].find("failure") is None
    failure = cases["Lisbon is Paris"].find("failure")
    assert failure is not None and "$.placeName eq" in (failure.text or "")
    # A variable from the command line wins over the environment's: now both fail.
    again = _run(str(folder), "--env", "local", "--var", "city=Tokyo")
    assert again.returncode == 1 and again.stdout.rstrip().endswith("0 passed, 2 failed")


def test_run_from_database(demo: DemoServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"

    async def make() -> None:
        store, _ = await _collection(url, demo.address, False)
        await store.close()

    asyncio.run(make())
    done = _run("Weather", "--database", url, "--env", "local")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("1 passed, 0 failed")
    protos = Path(__file__).resolve().parents[2] / "examples" / "weather"
    from_folder = _run("Weather", "--database", url, "--env", "local", "--proto", str(protos))
    assert from_folder.returncode == 0, from_folder.stdout + from_folder.stderr
    unknown = _run("Nope", "--database", url)
    assert unknown.returncode == 2 and "no collection is named 'Nope'" in unknown.stderr
    no_env = _run("Weather", "--database", url, "--env", "staging")
    assert no_env.returncode == 2 and "no environment 'staging'" in no_env.stderr


def test_run_a_collection_larger_than_a_page(demo: DemoServer, tmp_path: Path) -> None:
    """A collection of more requests than the largest API page (1000): `run` runs every
    one of them, in order (it reads the collection whole from the database, not one
    page of it)."""
    from connectrpc_catalog.saved.files import Imported
    from connectrpc_catalog.saved.paging import MAX_PAGE

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    count = MAX_PAGE + 5
    status_ok = [pb.Assertion(kind="status", op="eq", value="OK")]

    async def make() -> None:
        store = await Store.open(url, Sealer(""))
        try:
            await store.import_collection(
                WHO,
                "eng",
                Imported(
                    name="Big weather",
                    requests=[_lisbon(status_ok, f"call {i:04d}") for i in range(count)],
                    environments=[
                        pb.Environment(
                            name="local",
                            variables=[
                                pb.Variable(name="host", value=demo.address),
                                pb.Variable(name="city", value="Lisbon"),
                            ],
                        )
                    ],
                ),
            )
        finally:
            await store.close()

    asyncio.run(make())
    junit = tmp_path / "junit.xml"
    done = _run("Big weather", "--database", url, "--env", "local", "--junit", str(junit))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert done.stdout.rstrip().endswith(f"{count} passed, 0 failed")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(count)
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == [f"call {i:04d}" for i in range(count)]
