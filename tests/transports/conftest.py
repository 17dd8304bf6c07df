"""Fixtures for the transport tests: the connect-es servers on Node (see tests/upstream/node)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream import node
from tests.upstream.schema import TestSchema


@pytest.fixture(scope="session")
def connect_es_schema() -> TestSchema:
    """ChatService compiled into a pool (and the descriptor set the servers load)."""
    return node.chat_schema()


@pytest.fixture(scope="session")
def connect_es_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with connect-es, installed once per test session (skips without npm)."""
    return node.install(tmp_path_factory.mktemp("connect-es"))


@pytest.fixture(scope="session")
def connect_es_h2(
    connect_es_modules: Path, connect_es_schema: TestSchema,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[node.NodeServer]:
    """connect-es on `http2.createServer`: HTTP/2 with prior knowledge only."""
    server = node.serve("h2", connect_es_modules, connect_es_schema,
                        tmp_path_factory.mktemp("connect-es-h2"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_es_h1(
    connect_es_modules: Path, connect_es_schema: TestSchema,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[node.NodeServer]:
    """connect-es on `http.createServer`: HTTP/1.1 only."""
    server = node.serve("h1", connect_es_modules, connect_es_schema,
                        tmp_path_factory.mktemp("connect-es-h1"))
    yield server
    server.stop()
