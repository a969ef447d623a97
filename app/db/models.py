"""The tables. Every table that holds a tenant's data inherits `TenantOwned` (an `org_id`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

# Stable constraint names, so migrations can drop what they create.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with UUID keys and timezone-aware timestamps."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class Organization(Base):
    """A tenant: a business with its agents, numbers, calls and documents."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    clerk_org_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Card numbers and security codes are redacted from transcripts unless the org turns it off.
    redact_payment_data: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )
    max_concurrent_calls: Mapped[int | None] = mapped_column(Integer)  # None: the deployment's
    created_at: Mapped[datetime] = _created()


class TenantOwned(Base):
    """Mixin for rows owned by one organization; `app.db.tenancy` filters every query by it."""

    __abstract__ = True

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(
            ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False
        )


class Member(TenantOwned):
    """A person (a Clerk user) in an organization."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32), default="member")
    created_at: Mapped[datetime] = _created()


class ApiKey(TenantOwned):
    """An org API key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(64))  # the user or key that made it
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


# The knowledge base an upload goes to when none is named; search and agents without a
# knowledge base of their own use it too.
DEFAULT_KNOWLEDGE_BASE_NAME = "Default"


class KnowledgeBase(TenantOwned):
    """A set of documents searched together, embedded by one model (never mixed dimensions)."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    embedding_model: Mapped[str] = mapped_column(String(100))
    dimension: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()


class Agent(TenantOwned):
    """A configured voice agent."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str] = mapped_column(Text)
    greeting: Mapped[str] = mapped_column(Text)
    voice_id: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(16), default="en")
    llm_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tools: Mapped[list[Any]] = mapped_column(default=list)
    # Per-agent tool settings: base URLs that override the deployment's, the transfer number.
    tool_settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    flow: Mapped[dict[str, Any] | None]
    knowledge_base_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="SET NULL")
    )
    # How the agent uses its knowledge base: chunks per lookup, token budget, automatic context.
    knowledge: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    phone_numbers: Mapped[list[PhoneNumber]] = relationship(
        back_populates="agent", lazy="selectin", order_by="PhoneNumber.number"
    )


class PhoneNumber(TenantOwned):
    """A phone number (E.164) the organization owns, and the agent that answers it."""

    __tablename__ = "phone_numbers"

    id: Mapped[uuid.UUID] = _id()
    number: Mapped[str] = mapped_column(String(20), unique=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created()

    agent: Mapped[Agent | None] = relationship(back_populates="phone_numbers")


class Conversation(TenantOwned):
    """One call (or playground chat) with an agent."""

    __tablename__ = "conversations"
    __table_args__ = (
        # The dashboard's list: newest first, optionally by agent or status, keyset-paginated.
        Index("ix_conversations_org_started", "org_id", text("started_at DESC"), text("id DESC")),
        Index(
            "ix_conversations_org_agent_started",
            "org_id",
            "agent_id",
            text("started_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_conversations_org_status_started",
            "org_id",
            "status",
            text("started_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16), default="phone")
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    end_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sentiment: Mapped[float | None] = mapped_column(Float)
    latency: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recording_ref: Mapped[str | None] = mapped_column(Text)
    current_node: Mapped[str | None] = mapped_column(String(100))

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.seq", cascade="all, delete-orphan"
    )


class Message(TenantOwned):
    """One utterance in a conversation, written when its turn ends."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[uuid.UUID] = _id()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    # Seconds from the start of the call.
    started_s: Mapped[float | None] = mapped_column(Float)
    ended_s: Mapped[float | None] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    intended_text: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[Any]] = mapped_column(default=list)
    # Knowledge-base passages the reply drew on: document, chunk, position, heading.
    citations: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    # Which tier answered and why, what served it, the flow step it was said at.
    routing: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    latency: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created()

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Document(TenantOwned):
    """An uploaded file in a knowledge base."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("knowledge_base_id", "sha256"),)

    id: Mapped[uuid.UUID] = _id()
    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    storage_path: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class KnowledgeTerm(TenantOwned):
    """How many chunks of a knowledge base hold a word (a stemmed lexeme of their `tsv`).

    Full-text search reads it to tell rare words, which find a passage, from words most
    passages share (BM25's document frequency). Triggers on `chunks` keep it (migration 0004),
    so every way chunks come and go counts, cascades included.
    """

    __tablename__ = "knowledge_terms"

    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    chunks: Mapped[int] = mapped_column(Integer)


class Chunk(TenantOwned):
    """A searchable piece of a document: full-text vector and embedding."""

    __tablename__ = "chunks"
    # btree_gin puts the knowledge base in the full-text index: a search reads only its own
    # knowledge base's postings, however many other chunks the table holds.
    __table_args__ = (
        Index("ix_chunks_kb_tsv", "knowledge_base_id", "tsv", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _id()
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    knowledge_base_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    dimension: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(Vector())
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        # STORED: Postgres 18 makes generated columns virtual by default, and those take no index.
        Computed("to_tsvector('english', coalesce(heading, '') || ' ' || text)", persisted=True),
    )


# HNSW needs a fixed dimension: one partial index per embedding size in use (MiniLM: 384,
# Gemini at 768).
for _size in (384, 768):
    Index(
        f"ix_chunks_embedding_{_size}",
        cast(Chunk.embedding, Vector(_size)).label(f"embedding_{_size}"),
        postgresql_using="hnsw",
        postgresql_ops={f"embedding_{_size}": "vector_cosine_ops"},
        postgresql_where=Chunk.dimension == _size,
    )


class Subscription(TenantOwned):
    """The organization's plan and its Stripe subscription."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[uuid.UUID] = _id()
    plan: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    minutes_included: Mapped[int] = mapped_column(Integer)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    current_period_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()


class MinuteLedgerEntry(TenantOwned):
    """A signed movement of call minutes: grants, holds for live calls, usage, releases."""

    __tablename__ = "minute_ledger"

    id: Mapped[uuid.UUID] = _id()
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(16))
    minutes: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class ProcessedWebhookEvent(Base):
    """A provider's webhook event already handled (Stripe retries; handle each once)."""

    __tablename__ = "processed_webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = _created()


TENANT_TABLES = tuple(
    mapper.class_ for mapper in Base.registry.mappers if issubclass(mapper.class_, TenantOwned)
)
