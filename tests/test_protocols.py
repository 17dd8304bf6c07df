"""The catalog API is reachable over gRPC (HTTP/2 cleartext), gRPC-Web and Connect binary."""

from __future__ import annotations

import struct
from pathlib import Path

import grpc
import httpx
import pytest

from connectrpc_catalog.gen.catalog.v1 import catalog_pb

API = "/catalog.v1.CatalogService/"


def test_grpc_client_over_h2c(catalog_url: str, weather_protos: Path) -> None:
    target = catalog_url.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        load = channel.unary_unary(API + "LoadProtos")
        raw, call = load.with_call(_load_request(weather_protos), timeout=30)
        resp = catalog_pb.LoadProtosResponse.from_binary(raw)
        assert resp.success and resp.service_count == 1
        sid = dict(call.initial_metadata())["x-session-id"]
        listing = channel.unary_unary(API + "ListServices")
        raw = listing(b"", metadata=[("x-session-id", sid)], timeout=30)
        services = catalog_pb.ListServicesResponse.from_binary(raw).services
        assert [s.name for s in services] == ["acme.weather.v1.WeatherService"]
        schema = channel.unary_unary(API + "GetServiceSchema")
        with pytest.raises(grpc.RpcError) as info:
            schema(catalog_pb.GetServiceSchemaRequest(service_name="x.Y").to_binary(), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        assert "x.Y" in (info.value.details() or "")  # type: ignore[attr-defined]


def _load_request(path: Path) -> bytes:
    from protobuf import Oneof

    return catalog_pb.LoadProtosRequest(source=Oneof("proto_path", str(path))).to_binary()


def _frame(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        out.append((flags, body[5 : 5 + size]))
        body = body[5 + size :]
    return out


def test_grpc_web_binary(catalog_url: str, weather_protos: Path) -> None:
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    with httpx.Client(timeout=30) as client:
        r = client.post(
            catalog_url + API + "LoadProtos",
            content=_frame(_load_request(weather_protos)),
            headers=headers,
        )
        assert r.status_code == 200
        frames = _frames(r.content)
        assert frames[0][0] == 0 and catalog_pb.LoadProtosResponse.from_binary(frames[0][1]).success
        assert frames[-1][0] == 0x80 and b"grpc-status:0" in frames[-1][1].replace(b" ", b"")
        sid = r.headers["x-session-id"]
        r = client.post(
            catalog_url + API + "ListServices",
            content=_frame(b""),
            headers={**headers, "x-session-id": sid},
        )
        msg = catalog_pb.ListServicesResponse.from_binary(_frames(r.content)[0][1])
        assert [s.name for s in msg.services] == ["acme.weather.v1.WeatherService"]


def test_connect_binary_and_http2(catalog_url: str, weather_protos: Path) -> None:
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        r = client.post(
            catalog_url + API + "LoadProtos",
            content=_load_request(weather_protos),
            headers={"content-type": "application/proto"},
        )
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200
        assert catalog_pb.LoadProtosResponse.from_binary(r.content).file_count == 2
        assert len(r.headers["x-session-id"]) == 32
