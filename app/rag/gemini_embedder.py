"""Gemini embeddings through the official `google-genai` SDK, when GEMINI_API_KEY is set.

gemini-embedding-001 at 768 dimensions (Matryoshka-truncated, so re-normalised here). Queries
and documents are embedded with their own task types, as the model was trained. The model's
name carries the dimension, so a knowledge base built at one size is never searched at another.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from app.rag.embedder import Purpose

BATCH_LIMIT = 100  # texts per batchEmbedContents request (the API's limit)


def _retryable(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    return isinstance(code, int) and (code == 429 or code >= 500)


class GeminiEmbedder:
    """Embeds on Google's side; nothing runs locally but the normalisation."""

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "gemini-embedding-001",
        dimension: int = 768,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        from google import genai
        from google.genai import types

        self._types = types
        options = types.HttpOptions(base_url=base_url, timeout=int(timeout_s * 1000))
        self._client = genai.Client(api_key=api_key, http_options=options)
        self.model = model
        self.dimension = dimension
        self.name = f"{model}@{dimension}"

    async def prewarm(self) -> None:
        """Nothing to load: the model runs on Google's side."""

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aio.aclose()

    async def embed(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """Unit vectors, `BATCH_LIMIT` texts per request, retried on 429 and 5xx."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        config = self._types.EmbedContentConfig(
            task_type="RETRIEVAL_QUERY" if purpose == "query" else "RETRIEVAL_DOCUMENT",
            output_dimensionality=self.dimension,
        )
        rows: list[Any] = []
        for start in range(0, len(texts), BATCH_LIMIT):
            batch: list[Any] = texts[start : start + BATCH_LIMIT]
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(3),
                wait=wait_exponential(multiplier=0.2, max=2),
                reraise=True,
            ):
                with attempt:
                    response = await self._client.aio.models.embed_content(
                        model=self.model, contents=batch, config=config
                    )
            rows.extend(e.values for e in response.embeddings or [])
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise RuntimeError(f"Gemini returned embeddings of shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return unit
