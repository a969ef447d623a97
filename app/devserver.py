"""The app with in-process engines: `velox dev`, and the tests that need no Ray."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.app import create_app
from app.engines import Engines, build_embedder, build_local_engines, close_engines, prewarm_engines
from app.observability.metrics import Metrics
from app.rag.embedder import Embedder
from app.services import build_services
from app.settings import Settings, get_settings


def create_dev_app(
    settings: Settings | None = None,
    engines: Engines | None = None,
    embedder: Embedder | None = None,
) -> FastAPI:
    """FastAPI app whose hub runs the engines in this process."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        local = engines or build_local_engines(settings)
        own_embedder = embedder or build_embedder(settings)
        await prewarm_engines(local, settings.telephony.velox_system_prompt)
        await own_embedder.prewarm()
        services = await build_services(settings, local, Metrics(), own_embedder)
        services.attach(api)
        try:
            yield
        finally:
            await services.close()
            # Engines handed in belong to the caller (tests share them across apps).
            if engines is None:
                await close_engines(local)
            if embedder is None:
                await own_embedder.aclose()

    api = create_app()
    api.router.lifespan_context = lifespan
    return api
