"""A grpcio server for the latency bench: acme.weather.v1.WeatherService/GetCurrent echoes a
fixed Conditions message (bytes in, bytes out: no codegen needed)."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc

# Conditions{temperature: 21.5, pressure_pa: 101325, warnings: ["none"]}
RESPONSE = bytes.fromhex("110000000000803540") + b"\x18\xcd\x97\x06" + b"\x22\x04none"


def main(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "acme.weather.v1.WeatherService",
        {"GetCurrent": grpc.unary_unary_rpc_method_handler(lambda req, ctx: RESPONSE)},
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"upstream listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(int(sys.argv[1]))
