"""Prometheus metrics (prometheus-client, its own registry per app, served at /metrics).

Sessions (active, created, expired, oldest and newest age: the session manager's
stats), the compile pool (workers, busy, queued, their memory, restarts and recycles),
loads by source and result, invocations by transport, kind and status code with
latency histograms, the schema cache, and refusals by limit or policy. Labels never
carry identities, session ids, paths or targets: they stay few and name no one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .identity import Identity

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _Live(Collector):
    """Figures read when scraped: sessions and caches."""

    def __init__(self, read: Callable[[], dict[str, Any]], clock: Callable[[], float]) -> None:
        self._read = read
        self._clock = clock

    def describe(self) -> Iterator[Any]:
        """Nothing ahead of time (the figures are read when scraped)."""
        return iter(())

    def collect(self) -> Iterator[Any]:
        figures = self._read()
        now = self._clock()
        yield GaugeMetricFamily(
            "catalog_sessions_active", "Live sessions.", value=figures["active"]
        )
        yield CounterMetricFamily(
            "catalog_sessions_created", "Sessions created.", value=figures["created"]
        )
        yield CounterMetricFamily(
            "catalog_sessions_expired", "Sessions that expired.", value=figures["expired"]
        )
        for name, when in (("oldest", figures["oldest"]), ("newest", figures["newest"])):
            yield GaugeMetricFamily(
                f"catalog_session_{name}_age_seconds",
                f"Age of the {name} live session (0 without sessions).",
                value=max(0.0, now - when) if when is not None else 0.0,
            )
        yield CounterMetricFamily(
            "catalog_schema_cache_builds",
            "Schemas built (a load answered from the cache builds none).",
            value=figures["builds"],
        )
        hits = CounterMetricFamily(
            "catalog_cache_hits", "Lookups answered from a cache.", labels=["cache"]
        )
        hits.add_metric(["schema"], figures["hits"])
        hits.add_metric(["source"], figures["memo_hits"])
        if "file_hits" in figures:
            hits.add_metric(["file"], figures["file_hits"])
        yield hits
        yield GaugeMetricFamily(
            "catalog_schema_cache_entries", "Schemas in the cache.", value=figures["entries"]
        )
        runs = CounterMetricFamily(
            "catalog_source_tool_runs", "External steps run by loads.", labels=["step"]
        )
        for step, count in sorted(figures["runs"].items()):
            runs.add_metric([step], count)
        yield runs
        if "compile" in figures:
            yield from _pool(figures["compile"])


def _pool(stats: dict[str, Any]) -> Iterator[Any]:
    """The compile pool's figures (`Compiler.stats`)."""
    for name, key, text in (
        ("catalog_compile_workers", "workers", "Compile workers the pool may run."),
        ("catalog_compile_workers_running", "running", "Compile worker processes running."),
        ("catalog_compile_workers_busy", "busy", "Compile workers running a job."),
        ("catalog_compile_queue", "queued", "Compiles waiting for a worker."),
    ):
        yield GaugeMetricFamily(name, text, value=stats[key])
    rss = stats["worker_rss"]
    yield GaugeMetricFamily(
        "catalog_compile_worker_rss_bytes",
        "Resident memory of the compile workers after their last job, summed.",
        value=sum(rss),
    )
    yield GaugeMetricFamily(
        "catalog_compile_worker_rss_max_bytes",
        "Resident memory of the largest compile worker after its last job.",
        value=max(rss, default=0),
    )
    for name, key, text in (
        ("catalog_compiles", "compiles", "Compiles run by the workers."),
        ("catalog_compile_worker_starts", "starts", "Compile worker processes started."),
        (
            "catalog_compile_workers_recycled",
            "recycled",
            "Compile workers stopped after a job for growing past their memory limit.",
        ),
    ):
        yield CounterMetricFamily(name, text, value=stats[key])


class Metrics:
    """The app's metrics; also an `Observer` of loads and calls (see policy.py)."""

    def __init__(
        self, read: Callable[[], dict[str, Any]], clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Live(read, clock))
        self.loads = Counter(
            "catalog_loads", "LoadProtos calls.", ["source", "result"], registry=self.registry
        )
        self.load_seconds = Histogram(
            "catalog_load_seconds",
            "LoadProtos latency.",
            ["source"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.invocations = Counter(
            "catalog_invocations",
            "Upstream calls.",
            ["transport", "kind", "code"],
            registry=self.registry,
        )
        self.invocation_seconds = Histogram(
            "catalog_invocation_seconds",
            "Upstream call latency (streams: until they end).",
            ["transport", "kind"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "catalog_refusals",
            "Requests refused by a limit or the access policy.",
            ["reason"],
            registry=self.registry,
        )
        self.sign_ins = Counter(
            "catalog_sign_ins", "Sign-in attempts.", ["mode", "result"], registry=self.registry
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def refused_by(self, reason: str) -> None:
        """Count a refusal (`calls_per_minute`, `sessions_per_identity`, `policy`, …)."""
        self.refusals.labels(reason).inc()

    # Observer

    def loaded(
        self, *, who: Identity, session: str, kind: str, source: str, result: str, seconds: float
    ) -> None:
        """Count a load."""
        self.loads.labels(kind, result).inc()
        self.load_seconds.labels(kind).observe(seconds)

    def called(
        self,
        *,
        who: Identity,
        session: str,
        target: str,
        method: str,
        kind: str,
        transport: str,
        code: str,
        seconds: float,
    ) -> None:
        """Count an upstream call."""
        self.invocations.labels(transport, kind, code).inc()
        self.invocation_seconds.labels(transport, kind).observe(seconds)

    def refused(self, *, who: Identity, session: str, what: str, reason: str) -> None:
        """Count a refusal by the policy or a limit."""
        self.refused_by(_reason(reason))


def _reason(message: str) -> str:
    for flag, label in (
        ("--calls-per-minute", "calls_per_minute"),
        ("--streams-per-identity", "streams_per_identity"),
        ("--sessions-per-identity", "sessions_per_identity"),
        ("--proto-root", "proto_root"),
        ("--allow-target", "allow_target"),
    ):
        if flag in message:
            return label
    return "other"
