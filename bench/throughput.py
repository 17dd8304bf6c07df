"""Catalog API throughput vs a raw ASGI hello-world on the same server (hypercorn), with wrk.

Target: ListServices (Connect JSON, a session with the weather schema) >= 0.5x hello-world.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from common import PROTOS, catalog, hello

DURATION = "8s"
CONNECTIONS = "50"


def wrk(url: str, body: str, headers: dict[str, str]) -> float:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(f.name).unlink()
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not match or errors:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(match.group(1))


def main() -> int:
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with hello() as url:
        base = wrk(url + "/", "{}", {"Content-Type": "application/json"})
    with catalog() as url:
        r = httpx.post(
            url + "/catalog.v1.CatalogService/LoadProtos",
            json={"protoPath": str(PROTOS)},
            timeout=60,
        )
        sid = r.headers["x-session-id"]
        headers = {"Content-Type": "application/json", "X-Session-ID": sid}
        listing = wrk(url + "/catalog.v1.CatalogService/ListServices", "{}", headers)
        session = wrk(url + "/catalog.v1.CatalogService/GetSession", "{}", headers)
    print("| request | req/s | ratio to hello-world |")
    print("|---|---|---|")
    print(f"| raw ASGI hello-world (hypercorn) | {base:,.0f} | 1.00 |")
    print(f"| ListServices (Connect JSON) | {listing:,.0f} | {listing / base:.2f} |")
    print(f"| GetSession (Connect JSON) | {session:,.0f} | {session / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
