"""The one composition of a web process: database, auth, knowledge, tools, the conversation
engine, transcripts, call state and the live calls, built around the engines it is given.

Built the same way by the ingress replica (engines behind Ray handles) and by `velox dev` and
the tests (engines in process), so the two can never drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI

from app.agents.directory import AgentDirectory
from app.api.rate_limits import RateLimits
from app.auth.clerk import ClerkVerifier
from app.auth.principal import Authenticator
from app.call_state.admission import CallAdmission
from app.call_state.live import LiveCallRecorder
from app.call_state.store import CallStateStore, make_call_state
from app.calls.config import CallConfig
from app.calls.hub import CallHub
from app.calls.phrases import PhraseCache
from app.calls.recorder import FanoutRecorder
from app.calls.session import CallServices
from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine
from app.conversation.grounding import AgentKnowledge
from app.db.database import Database
from app.db.demo import demo_org_id
from app.db.setup import open_database
from app.engines import Engines
from app.llm.router import as_router
from app.observability.metrics import Metrics
from app.rag.embedder import Embedder
from app.rag.ingest import ChunkingPolicy, Ingestor
from app.rag.limits import UploadPolicy
from app.rag.search import HybridSearch
from app.rag.service import KnowledgeService
from app.rag.storage import FileStore
from app.rag.tokens import wordpiece_counter
from app.settings import Settings
from app.telephony.calls_api import TwilioCalls
from app.telephony.exposure import voice_refusal
from app.tools.registry import ToolBox
from app.transcripts.call_recorder import StoreCallRecorder
from app.transcripts.store import ConversationStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    """The long-lived objects behind the routes and the calls; each is one route dependency."""

    settings: Settings
    db: Database
    auth: Authenticator
    engines: Engines
    metrics: Metrics
    knowledge: KnowledgeService
    agent_knowledge: AgentKnowledge
    toolbox: ToolBox
    conversation: ConversationEngine
    transcripts: ConversationStore
    calls: CallStateStore
    hub: CallHub
    rate_limits: RateLimits

    def attach(self, api: FastAPI) -> None:
        """Make every service reachable from the routes (`app.api.deps` reads them)."""
        for name in self.__dataclass_fields__:
            setattr(api.state, name, getattr(self, name))

    async def close(self) -> None:
        """Stop ingestion (resumed on the next start), release the pool and connections."""
        await self.knowledge.ingestor.close()
        await self.toolbox.aclose()
        await self.calls.close()
        await self.db.close()


def clerk_verifier(settings: Settings) -> ClerkVerifier | None:
    """Clerk sign-in, when CLERK_SECRET_KEY is set."""
    if settings.auth.clerk_secret_key is None:
        return None
    return ClerkVerifier(
        secret_key=settings.auth.clerk_secret_key.get_secret_value(),
        api_url=settings.auth.clerk_api_url,
        issuer=settings.auth.clerk_issuer,
        authorized_parties=settings.auth.clerk_parties,
    )


def build_knowledge(db: Database, embedder: Embedder, settings: Settings) -> KnowledgeService:
    """Uploads land under VELOX_DATA_DIR/documents; chunks are sized in the embedder's tokens."""
    store = FileStore(settings.server.velox_data_dir / "documents")
    uploads = UploadPolicy.from_settings(settings.knowledge)
    ingestor = Ingestor(
        db,
        embedder,
        store,
        count_tokens=wordpiece_counter(),
        policy=ChunkingPolicy(
            max_tokens=settings.knowledge.rag_chunk_tokens,
            overlap_tokens=settings.knowledge.rag_chunk_overlap_tokens,
        ),
        parse_limits=uploads.parse,
    )
    return KnowledgeService(
        db, embedder, store, ingestor, HybridSearch(db, embedder), policy=uploads
    )


async def build_services(
    settings: Settings, engines: Engines, metrics: Metrics, embedder: Embedder
) -> Services:
    """Open (and migrate) the database and assemble everything around `engines`."""
    db = await open_database(settings)
    calls = make_call_state(settings.database.redis_url)
    knowledge = build_knowledge(db, embedder, settings)
    agent_knowledge = AgentKnowledge(knowledge)
    demo_org = await demo_org_id(db)
    toolbox = ToolBox(
        settings,
        twilio=TwilioCalls.from_settings(settings),
        lookup=agent_knowledge.search,
        transfer_number=settings.telephony.transfer_number,
        demo_org_id=str(demo_org) if demo_org else None,
    )
    conversation = ConversationEngine(
        llm=as_router(engines.llm),
        toolbox=toolbox,
        holding_after_s=settings.tools.holding_phrase_after_s,
        still_working_after_s=settings.tools.still_working_after_s,
    )
    transcripts = ConversationStore(db, settings)
    agents = AgentDirectory(db, settings)
    hub = CallHub(
        CallServices(
            stt=engines.stt,
            tts=engines.tts,
            conversation=conversation,
            agents=agents,
            admission=CallAdmission(
                calls,
                agents,
                token_ttl_s=settings.telephony.stream_token_ttl_s,
                max_calls_per_org=settings.telephony.velox_max_calls_per_org,
                org_cap=agents.call_cap,
            ),
            recorder=FanoutRecorder(StoreCallRecorder(transcripts), LiveCallRecorder(calls)),
            phrases=PhraseCache(engines.tts),
            metrics=metrics,
            lookup=agent_knowledge.context,
        ),
        CallConfig.from_settings(settings),
    )
    await hub.prewarm(AgentProfile.default(settings))
    await knowledge.ingestor.resume()
    if (refusal := voice_refusal(settings)) is not None:
        logger.error("Voice is OFF: %s. Calls get a 503 until this is fixed.", refusal)
    elif settings.telephony.twilio_auth_token is None:
        logger.warning(
            "TWILIO_AUTH_TOKEN is not set: X-Twilio-Signature is NOT checked, so anyone who "
            "can reach this server can place calls. Set it before exposing the server."
        )
    return Services(
        settings=settings,
        db=db,
        auth=Authenticator(db, clerk_verifier(settings)),
        engines=engines,
        metrics=metrics,
        knowledge=knowledge,
        agent_knowledge=agent_knowledge,
        toolbox=toolbox,
        conversation=conversation,
        transcripts=transcripts,
        calls=calls,
        hub=hub,
        rate_limits=RateLimits.from_settings(settings),
    )
