"""The app with in-process engines: `velox dev`, and the tests that need no Ray."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.app import create_app
from app.calls.hub import Engines
from app.engines import build_embedder, build_local_engines, prewarm
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
        await prewarm(local.stt)
        await prewarm(local.tts)
        await prewarm(local.llm, settings.velox_system_prompt)
        services = await build_services(
            settings, local, Metrics(), embedder or build_embedder(settings)
        )
        services.attach(api)
        try:
            yield
        finally:
            await services.close()

    api = create_app()
    api.router.lifespan_context = lifespan
    return api
