"""Unary latency: a direct grpcio call vs the same call through the catalog (p50, same run).

Both use one grpcio client: directly to the upstream, and to the catalog's InvokeGRPC over
gRPC (h2c), which calls the upstream over gRPC. Target: catalog p50 <= 2.5x direct p50.
"""

from __future__ import annotations

import http.client
import json
import sys
import time

import grpc
from common import PROTOS, catalog, free_port, p50, pct, process
from protobuf import Oneof

from connectrpc_catalog.gen.catalog.v1 import catalog_pb

CALLS = 2_000
WARMUP = 200
METHOD = "/acme.weather.v1.WeatherService/GetCurrent"
REQUEST = b"\x0a\x12\x09\x00\x00\x00\x00\x00\x00\x4a\x40\x11\x00\x00\x00\x00\x00\x00\x24\x40"


def timed(fn: object, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def main() -> int:
    port = free_port()
    with process([sys.executable, "bench/upstream.py", str(port)], port), catalog() as url:
        upstream = f"127.0.0.1:{port}"
        direct_ch = grpc.insecure_channel(upstream)
        direct = direct_ch.unary_unary(METHOD)
        cat_ch = grpc.insecure_channel(url.removeprefix("http://"))
        load = catalog_pb.LoadProtosRequest(source=Oneof("proto_path", str(PROTOS)))
        raw, call = cat_ch.unary_unary("/catalog.v1.CatalogService/LoadProtos").with_call(
            load.to_binary(), timeout=60
        )
        assert catalog_pb.LoadProtosResponse.from_binary(raw).success
        sid = dict(call.initial_metadata())["x-session-id"]
        invoke = cat_ch.unary_unary("/catalog.v1.CatalogService/InvokeGRPC")
        body = catalog_pb.InvokeGRPCRequest(
            endpoint=upstream,
            service="acme.weather.v1.WeatherService",
            method="GetCurrent",
            request_json='{"location": {"latitude": 52, "longitude": 10}}',
            transport=catalog_pb.Transport.GRPC,
        ).to_binary()
        meta = [("x-session-id", sid)]
        first = catalog_pb.InvokeGRPCResponse.from_binary(invoke(body, metadata=meta, timeout=30))
        if not first.success:
            print(f"the catalog call failed: {first.error}", file=sys.stderr)
            return 1

        def via_catalog() -> None:
            invoke(body, metadata=meta, timeout=30)

        # The web UI's path: Connect over HTTP/1.1 keep-alive (here binary, and JSON).
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        json_body = json.dumps(
            {
                "endpoint": upstream,
                "service": "acme.weather.v1.WeatherService",
                "method": "GetCurrent",
                "requestJson": '{"location": {"latitude": 52, "longitude": 10}}',
                "transport": "TRANSPORT_GRPC",
            }
        ).encode()

        def connect(payload: bytes, ctype: str) -> None:
            conn.request(
                "POST",
                "/catalog.v1.CatalogService/InvokeGRPC",
                payload,
                {"Content-Type": ctype, "X-Session-ID": sid},
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")

        def via_connect_proto() -> None:
            connect(body, "application/proto")

        def via_connect_json() -> None:
            connect(json_body, "application/json")

        def straight() -> None:
            direct(REQUEST, timeout=30)

        paths = {
            "direct grpcio → upstream": straight,
            "catalog InvokeGRPC, Connect proto over HTTP/1.1": via_connect_proto,
            "catalog InvokeGRPC, Connect JSON over HTTP/1.1": via_connect_json,
            "catalog InvokeGRPC, gRPC (grpcio client, h2c)": via_catalog,
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for fn in paths.values():
            timed(fn, WARMUP)
        # Interleave rounds so drift in machine load hits every path alike.
        for _ in range(10):
            for name, fn in paths.items():
                samples[name] += timed(fn, CALLS // 10)
        conn.close()
        direct_ch.close()
        cat_ch.close()
    base = p50(samples["direct grpcio → upstream"])
    print("| path | p50 ms | p90 ms | p99 ms | p50 ratio to direct |")
    print("|---|---|---|---|---|")
    for name, s in samples.items():
        print(
            f"| {name} | {p50(s):.3f} | {pct(s, 0.9):.3f} | {pct(s, 0.99):.3f} "
            f"| {p50(s) / base:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
