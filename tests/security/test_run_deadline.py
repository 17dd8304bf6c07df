"""A whole RunRequests has a deadline (`--max-run-seconds`): the security review found a
run of 500 requests could take 500 x 5 minutes. Past the deadline the request in progress
is stopped and it and the rest are reported as not run (deadline_exceeded), with the
results so far; `connectrpc-catalog run --max-run-seconds` does the same."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectrpc_catalog.app import AppConfig
from connectrpc_catalog.demo import demo_source
from connectrpc_catalog.demo.weather import DemoServer, start
from connectrpc_catalog.gen.catalog.v1 import catalog_pb
from connectrpc_catalog.gen.catalog.v1 import collections_pb as pb
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.saved.files import export_files, write_folder
from connectrpc_catalog.saved.secrets import Sealer
from connectrpc_catalog.saved.store import Store
from connectrpc_catalog.settings import SavedSettings
from connectrpc_catalog.startup import BaseSpec
from tests.catalog_server import run_catalog

API = "/catalog.v1.CollectionService/"
WHO = Identity(name="ci@example.com", groups=frozenset({"eng"}), via="oidc")
SLOW = '{"stationId": "LIS-001", "count": 100, "interval": "0.2s"}'  # 20 s of messages


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


def _requests(address: str) -> list[pb.SavedRequest]:
    def req(name: str, method: str, body: str) -> pb.SavedRequest:
        return pb.SavedRequest(
            name=name,
            service="weather.v1.WeatherService",
            method=method,
            endpoint=address,
            transport=catalog_pb.Transport.GRPC,
            request_messages_json=[body],
        )

    return [
        req("fast", "GetCurrentConditions", '{"location": {"city": "Lisbon"}}'),
        req("slow", "WatchObservations", SLOW),
        req("after", "GetCurrentConditions", '{"location": {"city": "Lisbon"}}'),
    ]


def _check(results: list[Any], name_of: Any, error_of: Any) -> None:
    assert [name_of(r) for r in results] == ["fast", "slow", "after"]
    assert error_of(results[0]) == ""
    for r in results[1:]:
        assert "--max-run-seconds" in error_of(r)


def test_run_requests_stops_at_the_run_deadline(demo: DemoServer, tmp_path: Path) -> None:
    config = AppConfig(
        saved=SavedSettings(database=f"sqlite:///{tmp_path / 'saved.db'}", max_run_seconds=1.5),
        base=BaseSpec(sources=(demo_source(demo),)),
    )
    with run_catalog(config) as c:
        c.call(c.app.reload_base())

        def post(method: str, body: dict[str, Any]) -> httpx.Response:
            return httpx.post(c.url + API + method, json=body, timeout=60)

        cid = post("SaveCollection", {"name": "slow"}).json()["id"]
        for req in _requests(demo.address):
            body = {
                "request": {
                    "collectionId": cid,
                    "name": req.name,
                    "service": req.service,
                    "method": req.method,
                    "endpoint": req.endpoint,
                    "transport": "TRANSPORT_GRPC",
                    "requestMessagesJson": list(req.request_messages_json),
                }
            }
            assert post("SaveRequest", body).status_code == 200
        started = time.monotonic()
        r = post("RunRequests", {"collectionId": cid})
        took = time.monotonic() - started
    assert r.status_code == 200, r.text
    answer = r.json()
    results = answer["results"]
    _check(results, lambda x: x["name"], lambda x: x.get("error", ""))
    assert results[0]["passed"] is True
    assert [x.get("statusName") for x in results[1:]] == ["deadline_exceeded"] * 2
    assert answer.get("passed") == 1 and answer.get("failed") == 2
    assert took < 20 / 2  # far less than the slow request's 20 s: it was stopped


def test_runner_cli_honours_max_run_seconds(demo: DemoServer, tmp_path: Path) -> None:
    async def export() -> list[pb.ExportedFile]:
        store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}", Sealer(""))
        coll = await store.save_collection(WHO, pb.SaveCollectionRequest(name="Slow", team="eng"))
        for req in _requests(demo.address):
            req.collection_id = coll.id
            await store.save_request(WHO, req)
        info, reqs, envs = await store.get_collection(WHO, coll.id)
        await store.close()
        return export_files(info, reqs, envs)

    folder = tmp_path / "slow"
    write_folder(folder, asyncio.run(export()))
    done = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "run", str(folder), "--max-run-seconds", "2s"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "PASS fast" in done.stdout
    assert "FAIL slow (deadline_exceeded" in done.stdout
    assert "FAIL after (deadline_exceeded" in done.stdout
    assert done.stdout.rstrip().endswith("1 passed, 2 failed")
    bad = subprocess.run(
        [sys.executable, "-m", "connectrpc_catalog", "run", str(folder), "--max-run-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--max-run-seconds" in bad.stderr


def test_max_run_seconds_is_a_setting_checked_at_start_up() -> None:
    from connectrpc_catalog.config import ConfigError, load_settings

    assert load_settings([], env={}).saved.max_run_seconds == 300.0
    env = {"CONNECTRPC_CATALOG_MAX_RUN_SECONDS": "90s"}
    assert load_settings([], env=env).saved.max_run_seconds == 90.0
    with pytest.raises(ConfigError, match="max_run_seconds"):
        load_settings([], env={"CONNECTRPC_CATALOG_MAX_RUN_SECONDS": "0"})
