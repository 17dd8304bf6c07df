"""The egress proxy buf reaches the network through while a restricted identity loads a
Buf module (policy.EgressProxy): it listens on 127.0.0.1 for the load's duration and
checks each tunnel against that identity's --allow-target. Any local program could use
it meanwhile, with that identity's permissions: now a tunnel needs the proxy's secret,
which only the URL handed to buf holds."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import urlsplit

from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import AccessPolicy, EgressProxy


async def _connect(proxy_url: str, target: str, credentials: str | None) -> bytes:
    parts = urlsplit(proxy_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if credentials is not None:
        head += f"Proxy-Authorization: Basic {base64.b64encode(credentials.encode()).decode()}\r\n"
    writer.write((head + "\r\n").encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return answer


async def test_a_tunnel_needs_the_proxys_secret() -> None:
    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(target, "127.0.0.1", 0)
    where = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    policy = AccessPolicy.build(allow_targets=["127.0.0.0/8"])
    try:
        async with EgressProxy(policy, Identity(name="alice@example.com")) as proxy:
            url = proxy.url
            parts = urlsplit(url)
            assert parts.username == "catalog" and parts.password
            plain = f"http://{parts.hostname}:{parts.port}"
            for credentials in (None, "catalog:wrong", f"other:{parts.password}"):
                answer = await _connect(plain, where, credentials)
                assert answer.startswith(b"HTTP/1.1 407"), (credentials, answer)
            answer = await _connect(plain, where, f"catalog:{parts.password}")
            assert answer.startswith(b"HTTP/1.1 200"), answer
    finally:
        server.close()
