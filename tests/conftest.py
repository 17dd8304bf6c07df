"""Shared fixtures: real catalog servers on 127.0.0.1 and the example protos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .catalog_server import RunningCatalog, run_catalog, run_cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def catalog_url() -> Iterator[str]:
    """The URL of a catalog started with the real CLI, shared by the whole test session."""
    with run_cli() as (url, _proc):
        yield url


@pytest.fixture
def catalog() -> Iterator[RunningCatalog]:
    """A fresh in-process catalog (its App, sessions and caches are reachable)."""
    with run_catalog() as running:
        yield running


@pytest.fixture(scope="session")
def weather_protos() -> Path:
    """A folder of .proto files with imports, well-known types and comments."""
    return FIXTURES / "protos"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP/1.1 client."""
    with httpx.Client(timeout=30) as client:
        yield client
