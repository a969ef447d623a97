"""Ingress deployment: the FastAPI app; each replica holds its calls for their whole life."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from app.api.app import create_app
from app.engines import Engines, build_router, close_engines, prewarm_engines
from app.observability.logs import configure_logging
from app.observability.metrics import Metrics
from app.observability.ray_metrics import RayMetricFactory
from app.services import build_services
from app.settings import Settings
from deployments.handles import HandleEmbedder, HandleLLM, HandleSTT, HandleTTS

logger = logging.getLogger(__name__)


@serve.deployment(name="ingress")
@serve.ingress()
class Ingress:
    """Twilio webhook, media streams, health and metrics."""

    async def __init__(
        self,
        settings: Settings,
        stt: DeploymentHandle,
        slm: DeploymentHandle,
        tts: DeploymentHandle,
        embedder: DeploymentHandle,
    ) -> None:
        configure_logging()
        engines = Engines(
            stt=HandleSTT(stt),
            # The router runs here, not in a deployment of its own: it holds no model, and a
            # hop between it and the ingress cost 14 ms of first token and 1.8 ms per token
            # under four calls (bench/router_hop.py).
            llm=build_router(settings, HandleLLM(slm, name="slm")),
            tts=HandleTTS(tts),
        )
        await prewarm_engines(engines)  # the cloud tiers' clients; the models warm themselves
        self.engines = engines
        # Asked, not assumed: with GEMINI_API_KEY the replica embeds with Gemini at 768.
        name, dimension = await embedder.model.remote()
        remote_embedder = HandleEmbedder(embedder, name=name, dimension=dimension)
        self.services = await build_services(
            settings, engines, Metrics(RayMetricFactory()), remote_embedder
        )

    async def __del__(self) -> None:
        # Serve awaits this once the replica's calls have drained (graceful_shutdown_timeout_s):
        # ingestion stops to resume elsewhere, the pool and connections are released.
        await self.services.close()
        await close_engines(self.engines)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built in the replica, after __init__, so the routes see this replica's hub
        # (an app built at import time would be pickled into a copy that never gets it).
        api = create_app()
        self.services.attach(api)
        logger.info("ingress ready")
        return api
