"""What one web process shares: database, authenticator, call hub, call state, knowledge base.

Built the same way by the ingress replica (engines behind Ray handles) and by `velox dev` and
the tests (engines in process), so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from app.agents.directory import AgentDirectory
from app.auth.clerk import ClerkVerifier
from app.auth.principal import Authenticator
from app.call_state.live import LiveCallRecorder
from app.call_state.store import CallStateStore, make_call_state
from app.calls.hub import CallHub, Engines
from app.calls.recorder import FanoutRecorder
from app.db.database import Database
from app.db.setup import open_database
from app.observability.metrics import Metrics
from app.rag.embedder import Embedder
from app.rag.ingest import ChunkingPolicy, Ingestor
from app.rag.search import HybridSearch
from app.rag.service import KnowledgeService
from app.rag.storage import FileStore
from app.rag.tokens import wordpiece_counter
from app.settings import Settings
from app.transcripts.call_recorder import StoreCallRecorder
from app.transcripts.store import ConversationStore


@dataclass(slots=True)
class Services:
    """The long-lived objects behind the routes."""

    db: Database
    auth: Authenticator
    hub: CallHub
    calls: CallStateStore
    knowledge: KnowledgeService

    def attach(self, api: FastAPI) -> None:
        """Make the services reachable from the routes (`request.app.state`)."""
        api.state.db = self.db
        api.state.auth = self.auth
        api.state.hub = self.hub
        api.state.calls = self.calls
        api.state.knowledge = self.knowledge
        api.state.settings = self.hub.settings

    async def close(self) -> None:
        """Stop ingestion (resumed on the next start), release the pool and connections."""
        await self.knowledge.ingestor.close()
        await self.hub.toolbox.aclose()
        await self.calls.close()
        await self.db.close()


def clerk_verifier(settings: Settings) -> ClerkVerifier | None:
    """Clerk sign-in, when CLERK_SECRET_KEY is set."""
    if settings.clerk_secret_key is None:
        return None
    return ClerkVerifier(
        secret_key=settings.clerk_secret_key.get_secret_value(),
        api_url=settings.clerk_api_url,
        issuer=settings.clerk_issuer,
        authorized_parties=settings.clerk_parties,
    )


def build_knowledge(db: Database, embedder: Embedder, settings: Settings) -> KnowledgeService:
    """Uploads land under VELOX_DATA_DIR/documents; chunks are sized in the embedder's tokens."""
    store = FileStore(settings.velox_data_dir / "documents")
    ingestor = Ingestor(
        db,
        embedder,
        store,
        count_tokens=wordpiece_counter(),
        policy=ChunkingPolicy(
            max_tokens=settings.rag_chunk_tokens, overlap_tokens=settings.rag_chunk_overlap_tokens
        ),
    )
    return KnowledgeService(db, embedder, store, ingestor, HybridSearch(db, embedder))


async def build_services(
    settings: Settings, engines: Engines, metrics: Metrics, embedder: Embedder
) -> Services:
    """Open (and migrate) the database and assemble the hub around `engines`."""
    db = await open_database(settings)
    calls = make_call_state(settings.redis_url)
    knowledge = build_knowledge(db, embedder, settings)
    hub = CallHub(
        engines=engines,
        settings=settings,
        metrics=metrics,
        recorder=FanoutRecorder(
            StoreCallRecorder(ConversationStore(db, settings)), LiveCallRecorder(calls)
        ),
        directory=AgentDirectory(db, settings),
        knowledge=knowledge,
    )
    await hub.prewarm()
    await knowledge.ingestor.resume()
    return Services(
        db=db,
        auth=Authenticator(db, clerk_verifier(settings)),
        hub=hub,
        calls=calls,
        knowledge=knowledge,
    )
