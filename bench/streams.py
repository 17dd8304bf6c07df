"""Server-stream relay: 100k messages read directly from a grpcio upstream vs through the
catalog's InvokeStream, same run, rounds interleaved.

    .venv/bin/python bench/streams.py [--quick]

The upstream (this file with `--upstream PORT`, its own process) answers
acme.weather.v1.WeatherService/StreamForecast with `x-count` copies of one encoded
`Conditions` (bytes out, no codegen). The catalog runs as the CLI. Paths:

- direct: a grpcio client reads the stream from the upstream;
- catalog, Connect JSON over HTTP/1.1 (the web UI's path), events carrying `json`;
- catalog, the same with `rawPayload` (events carry the message's bytes; the UI decodes
  them with the schema);
- catalog, gRPC (a grpcio client, binary events), with `raw_payload`.

Measured per path: messages per second (the target is >= 0.8x direct), the catalog's CPU
per message (its /proc/<pid>/stat), its resident memory before / peak / after (flat
memory), and the longest GetSession a second client (its own process) waited for while
the stream ran (no other client stalled > 50 ms). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROTOS, Ctx, Row, cpu_seconds, free_port, p50, process, rss_bytes

from connectrpc_catalog.gen.catalog.v1 import catalog_pb

SERVICE = "acme.weather.v1.WeatherService"
METHOD = f"/{SERVICE}/StreamForecast"
# Conditions{temperature: 21.5, pressure_pa: 101325, warnings: ["none"]}
MESSAGE = bytes.fromhex("110000000000803540") + b"\x18\xcd\x97\x06" + b"\x22\x04none"
HERE = Path(__file__).resolve()
PROBE_EVERY = 0.01
STALL_TARGET_MS = 50.0
Stats = dict[str, float]


# -- the upstream and the probe (run as their own processes) --------------------------


def serve_upstream(port: int) -> None:
    """StreamForecast sends `x-count` (metadata) copies of MESSAGE."""

    def stream(_req: bytes, ctx: grpc.ServicerContext) -> Iterator[bytes]:
        count = int(dict(ctx.invocation_metadata()).get("x-count", "1"))
        msg = MESSAGE
        for _ in range(count):
            yield msg

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"StreamForecast": grpc.unary_stream_rpc_method_handler(stream)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def _rss_kib(pid: int) -> int:
    """Resident KiB of the catalog and its children (a server's workers, Envoy)."""
    return (rss_bytes(pid) or 0) // 1024


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of the catalog and its children so far."""
    return cpu_seconds(pid) or 0.0


def probe(port: int, sid: str, pid: int) -> None:
    """Until stdin closes: GetSession every PROBE_EVERY s, and the catalog's RSS; then
    print the longest wait (ms) and the peak RSS (KiB) as JSON."""
    import threading

    done = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "X-Session-ID": sid}
    worst = 0.0
    peak = 0
    print("ready", flush=True)
    while not done.is_set():
        t0 = time.perf_counter()
        conn.request("POST", "/catalog.v1.CatalogService/GetSession", b"{}", headers)
        conn.getresponse().read()
        worst = max(worst, (time.perf_counter() - t0) * 1000)
        peak = max(peak, _rss_kib(pid))
        time.sleep(PROBE_EVERY)
    print(json.dumps({"worst_ms": worst, "peak_kib": peak}), flush=True)


# -- clients ------------------------------------------------------------------------------


def _direct(upstream: str, count: int) -> int:
    with grpc.insecure_channel(upstream) as ch:
        got = 0
        for _ in ch.unary_stream(METHOD)(b"", metadata=[("x-count", str(count))], timeout=600):
            got += 1
        return got


def _request(upstream: str, count: int, raw: bool) -> catalog_pb.InvokeStreamRequest:
    req = catalog_pb.InvokeStreamRequest(
        endpoint=upstream,
        service=SERVICE,
        method="StreamForecast",
        request_messages_json=["{}"],
        transport=catalog_pb.Transport.GRPC,
        metadata={"x-count": str(count)},
        timeout_seconds=300,
    )
    if raw:
        req.raw_payload = True
    return req


def _connect_json(port: int, sid: str, upstream: str, count: int, raw: bool) -> int:
    body = catalog_pb.InvokeStreamRequest.to_json(_request(upstream, count, raw)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request(
        "POST",
        "/catalog.v1.CatalogService/InvokeStream",
        b"\0" + len(body).to_bytes(4, "big") + body,
        {"Content-Type": "application/connect+json", "X-Session-ID": sid},
    )
    resp = conn.getresponse()
    got = 0
    buf = b""
    end = b""
    while chunk := resp.read1(1 << 16):
        buf += chunk
        pos = 0
        while len(buf) - pos >= 5:
            size = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if len(buf) - pos - 5 < size:
                break
            frame = buf[pos + 5 : pos + 5 + size]
            if buf[pos] & 2:
                end = frame
            elif frame.startswith(b'{"message"'):
                got += 1
            pos += 5 + size
        buf = buf[pos:]
    conn.close()
    if end != b"{}":
        raise RuntimeError(f"the stream ended with {end[:200]!r}")
    return got


def _catalog_grpc(port: int, sid: str, upstream: str, count: int, raw: bool) -> int:
    body = _request(upstream, count, raw).to_binary()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_stream("/catalog.v1.CatalogService/InvokeStream")
        got = 0
        for data in call(body, metadata=[("x-session-id", sid)], timeout=600):
            # tag 2 (message) = 0x12; headers = 0x0a, status = 0x1a
            got += data[:1] == b"\x12"
        return got


# -- the run -------------------------------------------------------------------------------


@contextmanager
def _catalog() -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "connectrpc_catalog", "--port", str(port),
           *os.environ.get("STREAMS_CATALOG_ARGS", "").split()]
    with process(cmd, port) as proc:
        yield port, proc.pid


def _load(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request(
        "POST",
        "/catalog.v1.CatalogService/LoadProtos",
        json.dumps({"protoPath": str(PROTOS)}).encode(),
        {"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    resp.read()
    sid = resp.getheader("x-session-id")
    if resp.status != 200 or not sid:
        raise RuntimeError(f"LoadProtos answered HTTP {resp.status}")
    return sid


def _measured(fn: Callable[[], int], count: int, port: int, sid: str, pid: int) -> Stats:
    prober = subprocess.Popen(
        [sys.executable, str(HERE), "--probe", str(port), sid, str(pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert prober.stdout is not None and prober.stdin is not None
    prober.stdout.readline()
    rss0 = _rss_kib(pid)
    cpu0 = _cpu_seconds(pid)
    t0 = time.perf_counter()
    got = fn()
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds(pid) - cpu0
    prober.stdin.close()
    stats = json.loads(prober.stdout.readline())
    prober.wait(10)
    if got != count:
        raise RuntimeError(f"{got} messages arrived, {count} were sent")
    return {
        "msg_s": count / seconds,
        "cpu_us": cpu / count * 1e6,
        "rss0": rss0 / 1024,
        "rss_peak": max(stats["peak_kib"], rss0) / 1024,
        "rss_after": _rss_kib(pid) / 1024,
        "stall_ms": stats["worst_ms"],
    }


PATHS = {
    "direct": "direct grpcio <- upstream",
    "json": "catalog InvokeStream, Connect JSON (HTTP/1.1), json events",
    "raw": "catalog InvokeStream, Connect JSON (HTTP/1.1), rawPayload",
    "grpc": "catalog InvokeStream, gRPC (h2c), raw_payload",
}


def measure_once(upstream: str, port: int, sid: str, pid: int, count: int) -> dict[str, Stats]:
    """Each path once, in turn: the stream of `count` messages and what it cost."""
    runs: dict[str, Callable[[], int]] = {
        "direct": lambda: _direct(upstream, count),
        "json": lambda: _connect_json(port, sid, upstream, count, False),
        "raw": lambda: _connect_json(port, sid, upstream, count, True),
        "grpc": lambda: _catalog_grpc(port, sid, upstream, count, True),
    }
    if os.environ.get("STREAMS_NO_RAW"):  # the code before rawPayload existed
        runs = {k: v for k, v in runs.items() if k in ("direct", "json")}
    return {key: _measured(fn, count, port, sid, pid) for key, fn in runs.items()}


def rows_of(stats: dict[str, Stats], count: int) -> list[Row]:
    """The run.py rows of one measurement (see bench/run.py's table)."""
    direct = stats["direct"]
    out = [
        Row("stream.relay", stats["json"]["msg_s"], direct["msg_s"],
            label=f"{count:,} server-streamed messages relayed (Connect JSON, json events)"),
        Row("stream.memory", stats["json"]["rss_peak"] - stats["json"]["rss0"],
            note="catalog RSS peak minus before, MiB"),
        Row("stream.cpu_per_msg", stats["json"]["cpu_us"], unit="µs",
            label="… catalog CPU per relayed message (json events)"),
        Row("stream.stall", stats["json"]["stall_ms"], direct["stall_ms"], unit="ms",
            label="… longest GetSession of another client meanwhile (baseline: during the "
            "direct stream)"),
    ]
    if "raw" in stats:
        out += [
            Row("stream.relay_raw", stats["raw"]["msg_s"], direct["msg_s"], unit="msg/s",
                label="… with rawPayload (binary messages in the events)"),
            Row("stream.cpu_per_msg_raw", stats["raw"]["cpu_us"], unit="µs",
                label="… catalog CPU per relayed message (rawPayload)"),
            Row("stream.relay_grpc", stats["grpc"]["msg_s"], direct["msg_s"], unit="msg/s",
                label="… over gRPC (h2c) with raw_payload"),
        ]
    return out


async def scenario(ctx: Ctx, quick: bool) -> list[Row]:
    """One measurement of every path (bench/run.py calls it once per round)."""
    count = 10_000 if quick else 100_000
    up_port = free_port()
    up = await ctx.start("stream-upstream", [sys.executable, str(HERE), "--upstream",
                                              str(up_port)], up_port)
    catalog = await ctx.catalog()
    if "streams.sid" not in ctx.state:
        ctx.state["streams.sid"] = await asyncio.to_thread(_load, catalog.port)
    stats = await asyncio.to_thread(
        measure_once, up.address, catalog.port, ctx.state["streams.sid"], catalog.proc.pid,
        count)
    return rows_of(stats, count)


def table(runs: list[dict[str, Stats]]) -> str:
    """Medians over the rounds, as a Markdown table."""
    def med(key: str, field: str) -> float:
        return p50([r[key][field] for r in runs])

    base = med("direct", "msg_s")
    lines = [
        "| path | msg/s (min-max) | ratio to direct | catalog CPU µs/msg "
        "| catalog RSS MiB before / peak / after | longest other-client wait ms |",
        "|---|---|---|---|---|---|",
    ]
    for key in runs[0]:
        rates = [r[key]["msg_s"] for r in runs]
        cpu = "" if key == "direct" else f"{med(key, 'cpu_us'):.1f}"
        rss = " / ".join(f"{med(key, f):.1f}" for f in ("rss0", "rss_peak", "rss_after"))
        lines.append(
            f"| {PATHS[key]} | {med(key, 'msg_s'):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
            f"| {med(key, 'msg_s') / base:.2f} | {cpu} | {rss} "
            f"| {max(r[key]['stall_ms'] for r in runs):.1f} |"
        )
    return "\n".join(lines)


def standalone(quick: bool) -> str:
    """bench/streams.py on its own: its own upstream and catalog, 3 rounds (1 quick)."""
    count = 10_000 if quick else 100_000
    up_port = free_port()
    with (
        process([sys.executable, str(HERE), "--upstream", str(up_port)], up_port),
        _catalog() as (port, pid),
    ):
        upstream = f"127.0.0.1:{up_port}"
        sid = _load(port)
        _direct(upstream, 1000)  # warm-up: connections, caches
        _connect_json(port, sid, upstream, 1000, False)
        runs = [measure_once(upstream, port, sid, pid, count) for _ in range(1 if quick else 3)]
    return table(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k messages, one round")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return 0
    if args.probe:
        port, sid, pid = args.probe
        probe(int(port), sid, int(pid))
        return 0
    print(standalone(args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
