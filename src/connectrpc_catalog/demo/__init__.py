"""The demo API shipped with the catalog: `connectrpc-catalog --demo`.

`start_demo` serves the Skylark Weather API (`weather`: all four kinds of method, rich
errors, streams) in this process on a free loopback port, and `with_demo` adds its
protos (with their comments) to the start-up sources, with the demo server as the
default target of its services, so a new user finds a callable API on the first page.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ..gen.catalog.v1 import catalog_pb
from ..startup import BaseSpec, StartupSource
from .weather import PROTO_ROOT, DemoServer, start

__all__ = ["DEMO_SERVICES", "DemoServer", "demo_source", "start", "start_demo", "with_demo"]

DEMO_SERVICES = ("weather.v1.AlertService", "weather.v1.WeatherService")


async def start_demo(host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """Start the demo API (compiling its protos takes about a second, off the loop)."""
    return await asyncio.to_thread(start, host, port)


def demo_source(demo: DemoServer) -> StartupSource:
    """The demo's protos as a start-up source whose services the demo server answers."""
    return StartupSource(
        kind="proto_path",
        value=str(PROTO_ROOT),
        default_target=catalog_pb.Target(
            endpoint=demo.address, transport=catalog_pb.Transport.GRPC
        ),
    )


def with_demo(spec: BaseSpec, demo: DemoServer) -> BaseSpec:
    """`spec` with the demo source first."""
    return replace(spec, sources=(demo_source(demo), *spec.sources))
