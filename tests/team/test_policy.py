"""The access policy's rules on their own: target patterns, address checks with real name
resolution (loopback only), folder checks with real symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectrpc_catalog.identity import Identity
from connectrpc_catalog.policy import AccessPolicy, PolicyError, RootPolicy, TargetRule


@pytest.mark.parametrize(
    ("text", "glob", "network", "ports"),
    [
        ("*.staging.internal:443", "*.staging.internal", None, ((443, 443),)),
        ("api.example.com", "api.example.com", None, ()),
        ("10.0.0.0/8:8000-8100", "", "10.0.0.0/8", ((8000, 8100),)),
        ("[fd00::/8]:443", "", "fd00::/8", ((443, 443),)),
        ("[::1]", "", "::1/128", ()),
        ("127.0.0.1:*", "", "127.0.0.1/32", ()),
        ("[::ffff:10.1.2.3]:80", "", "10.1.2.3/32", ((80, 80),)),
        ("Host.Example.COM.", "host.example.com", None, ()),
    ],
)
def test_patterns_parse(
    text: str, glob: str, network: str | None, ports: tuple[tuple[int, int], ...]
) -> None:
    rule = TargetRule.parse(text)
    assert rule.glob == glob and rule.ports == ports
    assert (str(rule.network) if rule.network else None) == network


@pytest.mark.parametrize(
    "text", ["", "a b", "host:0", "host:70000", "host:8-2", "[::1", "[::1]x", "h/st", "x" * 400]
)
def test_bad_patterns_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        TargetRule.parse(text)


async def test_addresses_are_checked_after_resolution() -> None:
    who = Identity(name="a")
    names = AccessPolicy.build(allow_targets=["*:50051"])
    for host in ("localhost", "127.1", "2130706433", "::1", "0.0.0.0", "::ffff:127.0.0.1"):
        with pytest.raises(PolicyError, match="--allow-target"):
            await names.check_target(host, 50051, who)  # a name rule never admits these
    address = AccessPolicy.build(allow_targets=["127.0.0.0/8:50051"])
    for host in ("localhost", "127.1", "2130706433", "0x7f000001", "::ffff:127.0.0.1"):
        await address.check_target(host, 50051, who)  # the same addresses, spelled anew
    with pytest.raises(PolicyError):
        await address.check_target("127.0.0.1", 50052, who)
    with pytest.raises(PolicyError, match="does not resolve"):
        await address.check_target("no-such-host.invalid", 50051, who)
    nothing = AccessPolicy.build()
    with pytest.raises(PolicyError):
        await nothing.check_target("10.0.0.1", 1, who)
    assert AccessPolicy.build(permissive=True).targets.any
    assert not AccessPolicy.build(permissive=True, allow_targets=["x:1"]).targets.any
    operator = AccessPolicy.build(operator_endpoints=["grpc+localhost:50051"])
    await operator.check_target("localhost", 50051, who)  # the operator named it


def test_folders_are_resolved_before_the_check(tmp_path: Path) -> None:
    root, other = tmp_path / "root", tmp_path / "rootless"
    (root / "a").mkdir(parents=True)
    other.mkdir()
    (root / "out").symlink_to(other, target_is_directory=True)
    policy = RootPolicy((root.resolve(),))
    policy.check(str(root / "a"))
    policy.check(str(root / "a" / ".." / "a" / "missing.proto"))
    for path in (str(other), str(root / "out"), str(root / ".." / "rootless"), str(root) + "less"):
        with pytest.raises(PolicyError, match="--proto-root"):
            policy.check(path)
    with pytest.raises(PolicyError, match="--proto-root DIR"):
        RootPolicy(()).check(str(root))
