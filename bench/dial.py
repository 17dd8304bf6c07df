"""The access policy's cost per call, and the buf egress proxy's tunnel set-up (p50, same run).

`.venv/bin/python bench/dial.py` (from the checkout): 400 sequential gRPC unary calls to a
loopback grpcio server through a session's invoker with every target allowed (the channel
resolves `localhost` itself) and with `--allow-target 127.0.0.0/8` (the policy resolves and
checks each call, and the channel dials the checked address); then 200 CONNECT tunnels
through an `EgressProxy`. Two rounds; ratios matter, not the absolute times.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import (
    AccessPolicy,
    EgressProxy,
    GuardedInvoker,
    IdentityLimits,
    Observers,
)
from connectrpc_catalog.transports import CallTarget, MethodRef, WireProtocol
from tests.upstream.behaviour import Recorder
from tests.upstream.grpc_server import start_grpc_server
from tests.upstream.schema import SERVICE

WHO = Identity(name="bench")
ECHO = MethodRef(path=f"/{SERVICE}/Echo")


async def calls(policy: AccessPolicy, port: int, n: int = 400) -> float:
    """p50 ms of `n` unary calls to localhost:`port` under `policy`."""
    invoker = GuardedInvoker(
        owner=WHO, session="bench", policy=policy, limits=IdentityLimits(), observer=Observers()
    )
    target = CallTarget(host="localhost", port=port, protocol=WireProtocol.GRPC)
    for _ in range(50):
        await invoker.unary(target, ECHO, b"")
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        result = await invoker.unary(target, ECHO, b"")
        samples.append(time.perf_counter() - start)
        if result.status.name != "OK":
            raise SystemExit(f"call failed: {result.status}")
    await invoker.close()
    return statistics.median(samples) * 1000


async def tunnels(policy: AccessPolicy, port: int, n: int = 200) -> float:
    """p50 ms to get a checked tunnel to localhost:`port` through an EgressProxy."""
    samples = []
    async with EgressProxy(policy, WHO) as proxy:
        proxy_port = int(proxy.url.rsplit(":", 1)[1])
        for _ in range(n):
            start = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            samples.append(time.perf_counter() - start)
            writer.close()
    return statistics.median(samples) * 1000


async def main() -> None:
    upstream = start_grpc_server(Recorder())
    anyone = AccessPolicy.build(permissive=True)
    checked = AccessPolicy.build(allow_targets=["127.0.0.0/8"])
    try:
        for round_ in range(2):
            free = await calls(anyone, upstream.port)
            pinned = await calls(checked, upstream.port)
            print(
                f"round {round_}: any target p50 {free:.3f} ms; checked and dialled p50 "
                f"{pinned:.3f} ms; ratio {pinned / free:.2f}"
            )
        print(f"egress tunnel set-up p50 {await tunnels(checked, upstream.port):.3f} ms")
    finally:
        upstream.stop()


if __name__ == "__main__":
    asyncio.run(main())
