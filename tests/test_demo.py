"""`connectrpc-catalog --demo`: the shipped weather API, started in-process and preloaded."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx

from .catalog_server import run_cli

API = "/catalog.v1.CatalogService/"


def _stream(client: httpx.Client, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    data = json.dumps(body).encode()
    r = client.post(
        url + API + "InvokeStream",
        content=struct.pack(">BI", 0, len(data)) + data,
        headers={"content-type": "application/connect+json"},
    )
    out, raw, pos = [], r.content, 0
    while pos < len(raw):
        _flags, size = struct.unpack(">BI", raw[pos : pos + 5])
        out.append(json.loads(raw[pos + 5 : pos + 5 + size]))
        pos += 5 + size
    return out


def test_demo_is_preloaded_and_every_kind_of_method_answers() -> None:
    with run_cli("--demo") as (url, _proc), httpx.Client(timeout=30) as client:
        services = client.post(url + API + "ListServices", json={}).json()["services"]
        by_name = {s["name"]: s for s in services}
        assert set(by_name) == {"weather.v1.AlertService", "weather.v1.WeatherService"}
        weather = by_name["weather.v1.WeatherService"]
        assert weather["fromBase"] and weather["defaultTarget"]["transport"] == "TRANSPORT_GRPC"
        assert weather["hasSourceInfo"] and weather["documentation"]  # comments come along
        calls = {
            ("WeatherService", "GetCurrentConditions"): ['{"location": {"city": "Lisbon"}}'],
            ("WeatherService", "WatchObservations"): [
                '{"stationId": "LIS-001", "count": 3, "interval": "0.01s"}'
            ],
            ("WeatherService", "ReportObservations"): ['{"stationId": "LIS-001"}'] * 2,
            ("AlertService", "Subscribe"): ['{"addRegion": "lisbon"}'],
        }
        for (service, method), messages in calls.items():
            events = _stream(
                client,
                url,
                {
                    "service": f"weather.v1.{service}",
                    "method": method,
                    "requestMessagesJson": messages,
                },
            )
            status = [e["status"] for e in events if "status" in e]
            assert status and status[0].get("success") is True, (method, events)
            assert any("message" in e for e in events)
        # A rich error: an unknown city is NOT_FOUND with details.
        r = client.post(
            url + API + "InvokeGRPC",
            json={
                "service": "weather.v1.WeatherService",
                "method": "GetCurrentConditions",
                "requestJson": '{"location": {"city": "Atlantis"}}',
            },
        ).json()
        assert r["statusName"] == "NOT_FOUND" and "ErrorInfo" in r["errorDetailsJson"]
