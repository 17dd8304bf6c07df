"""Unary latency: a direct grpcio call vs the same call through the catalog (p50, same run).

A grpcio client calls the upstream (bench/upstream.py) directly; the same client calls the
catalog's InvokeGRPC over gRPC (h2c), and http.client calls it over Connect (HTTP/1.1
keep-alive, binary and JSON: the web UI's path); the catalog calls the upstream over gRPC.
Paths are interleaved in rounds so machine drift hits them alike. Target: catalog p50 <=
2.5x direct p50 (rows `unary.connect_json`, `unary.grpc` of bench/run.py).

    .venv/bin/python bench/latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import time
from collections.abc import Callable

import grpc
from common import PROTOS, Ctx, Row, catalog, free_port, keepalive_post, p50, pct, process

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


Paths = dict[str, Callable[[], None]]
DIRECT = "direct grpcio → upstream"
KEYS = {
    "catalog InvokeGRPC, Connect JSON over HTTP/1.1": "unary.connect_json",
    "catalog InvokeGRPC, gRPC (grpcio client, h2c)": "unary.grpc",
    "catalog InvokeGRPC, Connect proto over HTTP/1.1": "unary.connect_proto",
}


class Clients:
    """The three clients of the measured paths, connected to one upstream and catalog."""

    def __init__(self, upstream: str, catalog_port: int) -> None:
        self.direct_ch = grpc.insecure_channel(upstream)
        self.cat_ch = grpc.insecure_channel(f"127.0.0.1:{catalog_port}")
        self.conn = http.client.HTTPConnection("127.0.0.1", catalog_port)
        load = catalog_pb.LoadProtosRequest.from_json(json.dumps({"protoPath": str(PROTOS)}))
        raw, call = self.cat_ch.unary_unary("/catalog.v1.CatalogService/LoadProtos").with_call(
            load.to_binary(), timeout=60
        )
        if not catalog_pb.LoadProtosResponse.from_binary(raw).success:
            raise RuntimeError("the catalog did not load the weather protos")
        self.sid = dict(call.initial_metadata())["x-session-id"]
        request = {
            "endpoint": upstream,
            "service": "acme.weather.v1.WeatherService",
            "method": "GetCurrent",
            "requestJson": '{"location": {"latitude": 52, "longitude": 10}}',
            "transport": "TRANSPORT_GRPC",
        }
        self.body = catalog_pb.InvokeGRPCRequest.from_json(json.dumps(request)).to_binary()
        self.json_body = json.dumps(request).encode()
        self.invoke = self.cat_ch.unary_unary("/catalog.v1.CatalogService/InvokeGRPC")
        self.direct = self.direct_ch.unary_unary(METHOD)
        first = catalog_pb.InvokeGRPCResponse.from_binary(
            self.invoke(self.body, metadata=[("x-session-id", self.sid)], timeout=30)
        )
        if not first.success:
            raise RuntimeError(f"the catalog call failed: {first.error}")

    def _connect(self, payload: bytes, ctype: str) -> None:
        headers = {"Content-Type": ctype, "X-Session-ID": self.sid}
        path = "/catalog.v1.CatalogService/InvokeGRPC"
        resp, _ = keepalive_post(self.conn, path, payload, headers)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")

    def paths(self) -> Paths:
        meta = [("x-session-id", self.sid)]
        return {
            DIRECT: lambda: self.direct(REQUEST, timeout=30),
            "catalog InvokeGRPC, Connect proto over HTTP/1.1": lambda: self._connect(
                self.body, "application/proto"
            ),
            "catalog InvokeGRPC, Connect JSON over HTTP/1.1": lambda: self._connect(
                self.json_body, "application/json"
            ),
            "catalog InvokeGRPC, gRPC (grpcio client, h2c)": lambda: self.invoke(
                self.body, metadata=meta, timeout=30
            ),
        }

    def close(self) -> None:
        self.conn.close()
        self.direct_ch.close()
        self.cat_ch.close()


def sample(paths: Paths, calls: int, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per call of each path: warm-up, then `rounds` interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():
        timed(fn, warmup)
    for _ in range(rounds):
        for name, fn in paths.items():
            samples[name] += timed(fn, calls // rounds)
    return samples


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    """One measurement of every path (bench/run.py calls it once per round)."""
    upstream = await ctx.upstream()
    cat = await ctx.catalog()
    clients: Clients | None = ctx.state.get("latency.clients")
    if clients is None:
        made = clients = await asyncio.to_thread(Clients, upstream.address, cat.port)
        ctx.state["latency.clients"] = made

        async def close() -> None:
            await asyncio.to_thread(made.close)

        ctx.at_exit(close)
    calls, warmup = (300, 50) if quick else (CALLS, WARMUP)
    samples = await asyncio.to_thread(sample, clients.paths(), calls, warmup, 5)
    base = p50(samples[DIRECT])
    return [
        Row(key, p50(samples[name]), base, unit="ms",
            label="" if key != "unary.connect_proto" else "unary InvokeGRPC p50, Connect proto "
            "(HTTP/1.1)", lo=pct(samples[name], 0.1), hi=pct(samples[name], 0.9))
        for name, key in KEYS.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 calls per path")
    quick = parser.parse_args().quick
    port = free_port()
    with process([sys.executable, "bench/upstream.py", str(port)], port), catalog() as url:
        clients = Clients(f"127.0.0.1:{port}", int(url.rsplit(":", 1)[1]))
        calls, warmup = (300, 50) if quick else (CALLS, WARMUP)
        samples = sample(clients.paths(), calls, warmup, 10)
        clients.close()
    base = p50(samples[DIRECT])
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
