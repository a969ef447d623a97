"""`/api/conversations`: the organization's calls, newest first, and one call's transcript."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, tuple_
from sqlalchemy.orm import selectinload

from app.api.deps import TenantSession, get_or_404
from app.api.errors import FieldValidationError, responses
from app.db.models import Conversation

router = APIRouter(
    prefix="/api/conversations", tags=["conversations"], responses=responses(401, 422)
)

Status = Literal["in_progress", "completed", "failed"]


class ConversationSummary(BaseModel):
    """A conversation in a list."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID | None
    channel: str
    call_sid: str | None
    from_number: str | None
    to_number: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    sentiment: float | None
    cost: dict[str, Any]


class MessageOut(BaseModel):
    """One utterance: `text` is what was heard, `intended_text` what the agent meant to say."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    role: str
    text: str
    started_s: float | None
    ended_s: float | None
    interrupted: bool
    intended_text: str | None
    tool_calls: list[Any]
    citations: list[Any]
    latency: dict[str, Any]
    model: str | None


class ConversationDetail(ConversationSummary):
    """A conversation with its transcript."""

    end_reason: str | None
    latency: dict[str, Any]
    recording_ref: str | None
    current_node: str | None
    messages: list[MessageOut]


class ConversationPage(BaseModel):
    """A page of conversations; pass `next_cursor` back as `cursor` for the next one."""

    items: list[ConversationSummary]
    next_cursor: str | None = Field(description="null on the last page")


@router.get("", summary="List conversations")
async def list_conversations(
    session: TenantSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="from the previous page")] = None,
    agent_id: uuid.UUID | None = None,
    status: Status | None = None,
    started_after: Annotated[datetime | None, Query(description="ISO 8601")] = None,
    started_before: Annotated[datetime | None, Query(description="ISO 8601")] = None,
) -> ConversationPage:
    """Newest first. Keyset pagination, so page 1,000 costs what page 1 does."""
    query = select(Conversation)
    if agent_id is not None:
        query = query.where(Conversation.agent_id == agent_id)
    if status is not None:
        query = query.where(Conversation.status == status)
    if started_after is not None:
        query = query.where(Conversation.started_at >= started_after)
    if started_before is not None:
        query = query.where(Conversation.started_at < started_before)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        query = query.where(tuple_(Conversation.started_at, Conversation.id) < (at, last_id))
    query = query.order_by(Conversation.started_at.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return ConversationPage(
        items=[ConversationSummary.model_validate(r) for r in rows],
        next_cursor=_encode_cursor(rows[-1]) if more else None,
    )


@router.get("/{conversation_id}", summary="Get a conversation", responses=responses(404))
async def get_conversation(
    conversation_id: uuid.UUID, session: TenantSession
) -> ConversationDetail:
    """One conversation with every message, in order."""
    await get_or_404(session, Conversation, conversation_id, "conversation")
    row = await session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .options(selectinload(Conversation.messages))
    )
    return ConversationDetail.model_validate(row)


def _encode_cursor(row: Conversation) -> str:
    raw = f"{row.started_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise FieldValidationError("query.cursor", "not a cursor this API returned") from exc
