"""The REST API alone (no call engines), for bench/api.py: `uvicorn bench.api_server:create`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.app import create_app
from app.auth.principal import Authenticator
from app.call_state.store import make_call_state
from app.db.setup import open_database
from app.settings import get_settings


def create() -> FastAPI:
    """The app with its database and authenticator; /voice routes are not exercised."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        db = await open_database(settings)
        api.state.db = db
        api.state.auth = Authenticator(db)
        api.state.calls = make_call_state(settings.database.redis_url)
        yield
        await db.close()

    api = create_app()
    api.router.lifespan_context = lifespan
    return api
