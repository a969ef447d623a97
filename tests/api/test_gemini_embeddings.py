"""With GEMINI_API_KEY, knowledge bases embed through the google-genai SDK (a local server that
speaks the Gemini REST API stands in for Google); a knowledge base never mixes embedders."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi import FastAPI

from app.engines import build_embedder
from app.rag.gemini_embedder import GeminiEmbedder
from app.services import Services, build_knowledge
from app.settings import Settings
from tests import factories
from tests.api.conftest import Tenant
from tests.fakes.gemini_server import API_KEY, FakeGemini
from tests.fixtures.kb_corpus import HANDBOOK

pytestmark = pytest.mark.integration


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def embedder_for(gemini: FakeGemini) -> GeminiEmbedder:
    settings = factories.settings(gemini_api_key=API_KEY, gemini_base_url=gemini.url)
    embedder = build_embedder(settings)
    assert isinstance(embedder, GeminiEmbedder)
    return embedder


async def test_vectors_are_unit_length_at_the_configured_size(gemini: FakeGemini) -> None:
    embedder = embedder_for(gemini)
    assert embedder.name == "gemini-embedding-001@768" and embedder.dimension == 768
    texts = [f"text number {i}" for i in range(130)]
    vectors = await embedder.embed(texts)
    assert vectors.shape == (130, 768)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paths = [path for path, _ in gemini.requests]
    assert len(paths) == 2 and all(
        p.endswith("/models/gemini-embedding-001:batchEmbedContents") for p in paths
    )  # 100 + 30
    first = gemini.requests[0][1]["requests"][0]
    assert first["outputDimensionality"] == 768 and first["taskType"] == "RETRIEVAL_DOCUMENT"
    await embedder.embed(["a question?"], purpose="query")
    assert gemini.requests[-1][1]["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


async def test_transient_errors_are_retried_and_bad_keys_are_not(gemini: FakeGemini) -> None:
    embedder = embedder_for(gemini)
    gemini.fail_next = [503, 429]
    assert (await embedder.embed(["hello"])).shape == (1, 768)
    bad = GeminiEmbedder("wrong-key", base_url=gemini.url)
    with pytest.raises(Exception, match="API key not valid"):
        await bad.embed(["hello"])


async def test_a_knowledge_base_keeps_its_embedder(
    org_a: Tenant,
    services: Services,
    app: FastAPI,
    settings: Settings,
    gemini: FakeGemini,
) -> None:
    # Org A's default knowledge base is built with the local model...
    await org_a.client.post(
        "/api/documents/upload", files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")}
    )
    await services.knowledge.ingestor.drain()
    # ...then the server switches to Gemini: new knowledge bases use it at 768 dimensions.
    knowledge = build_knowledge(services.db, embedder_for(gemini), settings)
    app.state.knowledge = knowledge
    kb = (await org_a.client.post("/api/knowledge-bases", json={"name": "Gemini docs"})).json()
    assert kb["embedding_model"] == "gemini-embedding-001@768" and kb["dimension"] == 768
    response = await org_a.client.post(
        "/api/documents/upload",
        files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
        data={"knowledge_base_id": kb["id"]},
    )
    await knowledge.ingestor.drain()
    document = (await org_a.client.get(f"/api/documents/{response.json()['id']}")).json()
    assert document["status"] == "ready", document
    found = await org_a.client.post(
        "/api/knowledge/search",
        json={"query": "burst pipes at night", "knowledge_base_id": kb["id"], "k": 3},
    )
    assert any("Emergency" in (h["heading"] or "") for h in found.json()["items"]), found.json()
    # The old knowledge base is not searched with the wrong model: a clear conflict instead.
    old = await org_a.client.post("/api/knowledge/search", json={"query": "burst pipes"})
    assert old.status_code == 409 and "all-minilm" in old.json()["error"]["message"]
