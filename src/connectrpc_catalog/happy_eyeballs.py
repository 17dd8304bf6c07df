"""Which of a name's checked addresses to dial (RFC 8305's staggered connection race).

When targets are checked (`--allow-target`), the catalog dials the exact address it
checked, never the name again (`policy.AccessPolicy.check_target`). A name with several
addresses — `localhost` as `::1` and `127.0.0.1` on most dual-stack hosts, a service
with A and AAAA records — must then not be pinned to its first one: an upstream
listening on IPv4 only would be unreachable by name, where curl, grpcurl and a browser
reach it. `Chooser.pick` races TCP connections to the addresses in the resolver's order,
starting the next one when the one before has failed or has not connected within
`stagger` seconds, and answers the first that connects (the probe is closed at once,
nothing is sent). None connecting within `timeout`: the first address, so the call fails
as it would have, with the transport's own error and hints.

A name with one address is answered at once, without a probe. A choice is kept for
`keep` seconds per (addresses, port) — a different DNS answer is a different key — so
a target called in a loop costs one probe every `keep` seconds, not one per call. Only
addresses already checked are ever candidates: the choice changes which allowed
address is dialled, never what is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

__all__ = ["Chooser"]

IPAddress = IPv4Address | IPv6Address


class Chooser:
    """Picks the address to dial among a name's checked ones, and remembers it."""

    def __init__(
        self,
        *,
        stagger: float = 0.25,
        timeout: float = 2.0,
        keep: float = 30.0,
        max_kept: int = 4096,
    ) -> None:
        self.stagger = stagger
        self.timeout = timeout
        self.keep = keep
        self.max_kept = max_kept
        self._kept: OrderedDict[tuple[tuple[IPAddress, ...], int], tuple[IPAddress, float]] = (
            OrderedDict()
        )

    async def pick(self, addrs: Sequence[IPAddress], port: int) -> IPAddress:
        """The address to dial: the first of `addrs` that accepts a TCP connection (raced,
        staggered), or `addrs[0]` when none does. `addrs` must not be empty."""
        if len(addrs) == 1:
            return addrs[0]
        key = (tuple(addrs), port)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        chosen = await self._race(addrs, port)
        self._kept[key] = (chosen, now + self.keep)
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_kept:
            self._kept.popitem(last=False)
        return chosen

    async def _race(self, addrs: Sequence[IPAddress], port: int) -> IPAddress:
        winner: asyncio.Future[IPAddress] = asyncio.get_running_loop().create_future()
        tasks: list[asyncio.Task[None]] = []

        async def attempt(i: int, previous_failed: asyncio.Event) -> None:
            if i:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.stagger):
                        await previous_failed.wait()
            failed = asyncio.Event()
            if i + 1 < len(addrs):
                tasks.append(asyncio.create_task(attempt(i + 1, failed)))
            if await _connects(addrs[i], port, self.timeout) and not winner.done():
                winner.set_result(addrs[i])
            failed.set()

        tasks.append(asyncio.create_task(attempt(0, asyncio.Event())))
        try:
            async with asyncio.timeout(self.timeout):
                while not winner.done():
                    pending: list[asyncio.Future[Any]] = [t for t in tasks if not t.done()]
                    if not pending:
                        break
                    pending.append(winner)
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return winner.result() if winner.done() else addrs[0]


async def _connects(addr: IPAddress, port: int, within: float) -> bool:
    """Whether a TCP connection to addr:port opens within `within` seconds (closed at once)."""
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(str(addr), port, family=family)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
