"""Embedder deployment: texts from every call and every upload, batched together."""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from app.engines import build_embedder
from app.rag.embedder import Purpose
from app.settings import Settings


@serve.deployment(name="embedder")
class EmbedderDeployment:
    """One model, many callers: Serve gathers single texts into batches of up to 64."""

    async def __init__(self, settings: Settings) -> None:
        self.engine = build_embedder(settings)
        await self.engine.prewarm()

    async def __del__(self) -> None:
        # Serve awaits this when the replica stops (scale-down, redeploy, shutdown).
        await self.engine.aclose()

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def _embed_document(self, texts: list[str]) -> list[np.ndarray]:
        return list(await self.engine.embed(texts, purpose="document"))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _embed_query(self, texts: list[str]) -> list[np.ndarray]:
        return list(await self.engine.embed(texts, purpose="query"))

    def model(self) -> tuple[str, int]:
        """The engine's name and dimension: knowledge bases record them, never to mix models."""
        return self.engine.name, self.engine.dimension

    async def embed(self, texts: list[str], purpose: Purpose = "document") -> np.ndarray:
        """Rows of unit vectors, in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.engine.dimension), dtype=np.float32)
        one = self._embed_query if purpose == "query" else self._embed_document
        return np.stack(await asyncio.gather(*(one(t) for t in texts)))
