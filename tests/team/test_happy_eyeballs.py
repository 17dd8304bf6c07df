"""A checked name with several addresses is dialled at one that answers (RFC 8305).

On loopback, 127.0.0.2 stands for an address of the name where nothing listens (the
upstreams here bind 127.0.0.1 only), as `::1` does for an IPv4-only server reached as
`localhost` on a dual-stack host. The names (`*.rebind.test`) resolve nowhere but in the
policy's resolver, so a call that reaches the upstream went to an address the policy
checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from connectrpc_catalog.happy_eyeballs import Chooser
from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import (
    AccessPolicy,
    GuardedInvoker,
    IdentityLimits,
    IPAddress,
    Observers,
    PolicyError,
)
from connectrpc_catalog.transports import CallTarget, MethodRef, WireProtocol
from tests.upstream.connect_server import ConnectServer
from tests.upstream.grpc_server import GrpcServer
from tests.upstream.schema import SERVICE

pytest_plugins = ["tests.upstream.fixtures"]

NAME = "dual.rebind.test"
ECHO = MethodRef(path=f"/{SERVICE}/Echo")
DEAD = ipaddress.ip_address("127.0.0.2")
LIVE = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def listening() -> Iterator[int]:
    """A TCP port open on 127.0.0.1 only (closed on 127.0.0.2)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield sock.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_first_address_that_connects_is_chosen(listening: int) -> None:
    chooser = Chooser()
    assert await chooser.pick([DEAD, LIVE], listening) == LIVE
    assert await chooser.pick([LIVE, DEAD], listening) == LIVE


async def test_one_address_is_answered_without_a_probe() -> None:
    port = _closed_port()
    assert await Chooser().pick([DEAD], port) == DEAD


async def test_none_answering_gives_the_first_so_the_call_fails_as_before() -> None:
    port = _closed_port()
    assert await Chooser(timeout=1.0).pick([DEAD, LIVE], port) == DEAD


async def test_a_choice_is_kept_then_made_again() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        chooser = Chooser(keep=60.0)
        assert await chooser.pick([DEAD, LIVE], port) == LIVE
    # Nothing listens now: the kept choice stands (no probe per call) ...
    assert await chooser.pick([DEAD, LIVE], port) == LIVE
    # ... a different answer for the name is a different key ...
    assert await chooser.pick([LIVE, DEAD], port) == LIVE  # none answers: the first
    expired = Chooser(keep=0.0)
    assert await expired.pick([DEAD, LIVE], port) == DEAD  # ... and an old one is redone


async def test_many_names_at_once_stay_bounded(listening: int) -> None:
    chooser = Chooser(max_kept=8)
    addrs = [[ipaddress.ip_address(f"127.0.{i}.2"), LIVE] for i in range(20)]
    chosen = await asyncio.gather(*(chooser.pick(a, listening) for a in addrs))
    assert chosen == [LIVE] * 20
    assert len(chooser._kept) == 8


# -- through the policy: a call by name reaches the upstream on its live address ------------


class TwoAddresses:
    """Answers DEAD then LIVE for NAME, as a dual-stack host answers ::1 then 127.0.0.1."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls += 1
        if host == "mixed.rebind.test":
            return [DEAD, ipaddress.ip_address("192.0.2.1")]  # one not allowed
        return [DEAD, LIVE] if host == NAME else []


@pytest.mark.parametrize("protocol", list(WireProtocol))
async def test_a_call_by_name_reaches_the_address_that_listens(
    protocol: WireProtocol, grpc_upstream: GrpcServer, connect_upstream: ConnectServer
) -> None:
    port = grpc_upstream.port if protocol is WireProtocol.GRPC else connect_upstream.port
    policy = replace(AccessPolicy.build(allow_targets=["127.0.0.0/8"]), resolver=TwoAddresses())
    invoker = GuardedInvoker(
        owner=Identity(name="alice@example.test"),
        session="test",
        policy=policy,
        limits=IdentityLimits(),
        observer=Observers(),
    )
    try:
        result = await invoker.unary(
            CallTarget(host=NAME, port=port, protocol=protocol), ECHO, b"", timeout_s=10
        )
        assert result.status.name == "OK", result.status
        # Every address is still checked: one refused address refuses the name.
        with pytest.raises(PolicyError, match=r"192\.0\.2\.1"):
            await invoker.unary(
                CallTarget(host="mixed.rebind.test", port=port, protocol=protocol),
                ECHO,
                b"",
                timeout_s=10,
            )
    finally:
        await invoker.close()
