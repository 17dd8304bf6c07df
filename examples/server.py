"""Example upstream for connectrpc-catalog: the Skylark Weather API over gRPC.

    .venv/bin/python examples/server.py --port 50051

The same API `connectrpc-catalog --demo` starts in-process, here on its own: it
compiles ``examples/weather/**/*.proto`` (the package's ``demo/protos``) with grpc_tools
into a temporary directory, then serves ``weather.v1.WeatherService`` and
``weather.v1.AlertService`` with gRPC server reflection, so the catalog can load the
schema either from the folder (``examples/weather``) or by reflection
(``127.0.0.1:50051``). The services live in ``connectrpc_catalog.demo.weather``.
"""

from __future__ import annotations

from connectrpc_catalog.demo.weather import main

if __name__ == "__main__":
    main()
