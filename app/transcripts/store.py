"""The conversation store: the rows of a call or playground chat, written and read one way."""

from __future__ import annotations

import json
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversation.sentiment import caller_sentiment
from app.db.database import Database
from app.db.models import Conversation
from app.db.models import Message as MessageRow
from app.llm.base import Message, ToolCall
from app.rag.passage import Citation
from app.settings import Settings
from app.transcripts.costs import CallUsage, TierTokens, cost_breakdown

Channel = Literal["phone", "playground"]


class ConversationNotFound(LookupError):
    """No such conversation in this organization (another org's is not found either)."""

    def __init__(self, conversation_id: uuid.UUID) -> None:
        super().__init__(f"conversation {conversation_id} not found")
        self.conversation_id = conversation_id


class TranscriptMoved(RuntimeError):
    """Another message was stored after the transcript a reply answered."""

    def __init__(self, conversation_id: uuid.UUID) -> None:
        super().__init__(f"conversation {conversation_id} answered another message meanwhile")
        self.conversation_id = conversation_id


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Which conversation, whose, and when it began (unix time): messages are timed from then."""

    id: uuid.UUID
    org_id: uuid.UUID
    started_at: float

    @classmethod
    def new(cls, org_id: uuid.UUID, started_at: float) -> ConversationRef:
        """A conversation not stored yet; its id is known before it is (calls queue its rows)."""
        return cls(uuid.uuid4(), org_id, started_at)


@dataclass(slots=True)
class Opening:
    """What a conversation row starts with."""

    agent_id: uuid.UUID
    channel: Channel
    call_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    current_node: str | None = None  # the flow's start step


@dataclass(slots=True)
class TurnEntry:
    """One finished turn as its transcript keeps it: the caller's words, then the agent's."""

    caller_text: str
    agent_text: str  # what the caller heard
    intended_text: str  # what the agent meant to say (longer when the caller cut it off)
    started_at: float  # unix time
    ended_at: float
    interrupted: bool = False
    latency: dict[str, float] = field(default_factory=dict)  # stage → seconds
    model: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # name, arguments, outcome
    citations: list[Citation] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    llm_tokens: TierTokens = field(default_factory=dict)
    node: str | None = None  # the flow step after the turn (None leaves the stored one)

    @property
    def has_agent_message(self) -> bool:
        """The agent said, meant to say, or did something: a silent tool call is kept too."""
        return bool(self.agent_text or self.intended_text or self.tool_calls)

    @property
    def places(self) -> int:
        """How many messages (places in the transcript) the turn takes."""
        return int(bool(self.caller_text)) + int(self.has_agent_message)


@dataclass(slots=True)
class CallEnd:
    """What a call's totals are made of, gathered while it ran."""

    status: str
    reason: str
    ended_at: float  # unix time
    duration_s: float
    usage: CallUsage
    caller_texts: list[str]
    timings: list[dict[str, float | None]]  # each answered turn's stage timings


@dataclass(slots=True)
class Transcript:
    """A stored conversation read back: what the engine needs to go on, and where it ends."""

    ref: ConversationRef
    agent_id: uuid.UUID | None
    channel: str
    status: str
    current_node: str | None
    history: list[Message] = field(default_factory=list)  # as the engine reads it
    last_seq: int = 0  # the place of the last message (0 while there is none)


class ConversationStore:
    """Opens, appends to, prices, closes and reads back conversations, always inside one org."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def open(self, ref: ConversationRef, opening: Opening) -> Transcript:
        """Store a new conversation, in progress from `ref.started_at`."""
        async with self.db.tenant(ref.org_id) as session:
            session.add(
                Conversation(
                    id=ref.id,
                    agent_id=opening.agent_id,
                    channel=opening.channel,
                    call_sid=opening.call_sid,
                    from_number=opening.from_number,
                    to_number=opening.to_number,
                    status="in_progress",
                    started_at=_utc(ref.started_at),
                    current_node=opening.current_node,
                )
            )
            await session.commit()
        return Transcript(
            ref=ref,
            agent_id=opening.agent_id,
            channel=opening.channel,
            status="in_progress",
            current_node=opening.current_node,
        )

    async def read(self, org_id: uuid.UUID, conversation_id: uuid.UUID) -> Transcript:
        """The conversation with its history, or ConversationNotFound."""
        async with self.db.tenant(org_id) as session:
            row = await session.scalar(
                select(Conversation).where(Conversation.id == conversation_id)
            )
            if row is None:
                raise ConversationNotFound(conversation_id)
            messages = await session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.seq)
            )
            history: list[Message] = []
            last_seq = 0
            for message in messages:
                last_seq = message.seq
                history.extend(_as_history(message))
        return Transcript(
            ref=ConversationRef(row.id, org_id, row.started_at.timestamp()),
            agent_id=row.agent_id,
            channel=row.channel,
            status=row.status,
            current_node=row.current_node,
            history=history,
            last_seq=last_seq,
        )

    async def append_turn(self, ref: ConversationRef, turn: TurnEntry, *, after_seq: int) -> int:
        """A call's turn, at places `after_seq + 1…`; return the last place taken.

        The call keeps its usage itself and prices it once, in `finish_call`.
        """
        async with self.db.tenant(ref.org_id) as session:
            await self._write_turn(session, ref, turn, after_seq, if_last=False)
            await session.commit()
        return after_seq + turn.places

    async def append_reply(
        self,
        ref: ConversationRef,
        turn: TurnEntry,
        *,
        after_seq: int,
        end_reason: str | None = None,
    ) -> int:
        """A playground turn, stored only while `after_seq` is still the transcript's last place
        (else TranscriptMoved), its tokens added to the running cost; `end_reason` closes the
        conversation with it. Returns the last place taken."""
        async with self.db.tenant(ref.org_id) as session:
            try:
                conversation = await self._write_turn(session, ref, turn, after_seq, if_last=True)
                # The playground keeps nothing between messages: its usage lives in the row.
                usage = CallUsage.from_cost(conversation.cost).add(llm_tokens=turn.llm_tokens)
                conversation.cost = cost_breakdown(usage, 0.0, self.settings)
                if end_reason is not None:
                    conversation.status = "completed"
                    conversation.end_reason = end_reason
                    conversation.ended_at = func.now()
                await session.commit()
            except IntegrityError as exc:  # another message took these places at the same moment
                raise TranscriptMoved(ref.id) from exc
        return after_seq + turn.places

    async def finish_call(self, ref: ConversationRef, end: CallEnd) -> None:
        """Close a call: status, duration, cost breakdown, caller sentiment, latency summary."""
        values = {
            "status": end.status if end.status in ("completed", "failed") else "failed",
            "end_reason": end.reason,
            "ended_at": _utc(end.ended_at),
            "duration_s": round(end.duration_s, 3),
            "cost": cost_breakdown(end.usage, end.duration_s, self.settings),
            "sentiment": caller_sentiment(end.caller_texts),
            "latency": latency_summary(end.timings),
        }
        async with self.db.tenant(ref.org_id) as session:
            done = await session.execute(
                update(Conversation).where(Conversation.id == ref.id).values(**values)
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise ConversationNotFound(ref.id)
            await session.commit()

    async def _write_turn(
        self,
        session: AsyncSession,
        ref: ConversationRef,
        turn: TurnEntry,
        after_seq: int,
        *,
        if_last: bool,
    ) -> Conversation:
        # The row is locked first, through the org's scope: a conversation of another org is
        # not found (messages only reference conversations.id, so nothing else would stop it),
        # and a second reply to the same transcript waits here, then sees the first one's seq.
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == ref.id).with_for_update()
        )
        if conversation is None:
            raise ConversationNotFound(ref.id)
        # A call numbers its turns itself and must keep writing after a turn that failed to save
        # (a gap in seq, not a lost call); a reply is only valid after what it answered.
        if if_last and after_seq != await _last_seq(session, ref.id):
            raise TranscriptMoved(ref.id)
        session.add_all(_rows(ref, turn, after_seq))
        if turn.node is not None:
            conversation.current_node = turn.node
        await session.flush()
        return conversation


def _rows(ref: ConversationRef, turn: TurnEntry, after_seq: int) -> list[MessageRow]:
    started_s = round(turn.started_at - ref.started_at, 3)
    rows: list[MessageRow] = []
    if turn.caller_text:
        rows.append(
            MessageRow(
                conversation_id=ref.id,
                seq=after_seq + len(rows) + 1,
                role="caller",
                text=turn.caller_text,
                started_s=started_s,
            )
        )
    if turn.has_agent_message:
        rows.append(
            MessageRow(
                conversation_id=ref.id,
                seq=after_seq + len(rows) + 1,
                role="agent",
                text=turn.agent_text,
                started_s=started_s,
                ended_s=round(turn.ended_at - ref.started_at, 3),
                interrupted=turn.interrupted,
                intended_text=turn.intended_text,
                latency=dict(turn.latency),
                model=turn.model,
                citations=turn.citations,
                tool_calls=turn.tool_calls,
                routing=turn.routing,
            )
        )
    return rows


def _as_history(row: MessageRow) -> list[Message]:
    """A stored message as the engine's history holds it: tool calls and their results before
    the words, each call with an id the result answers."""
    if row.role == "caller":
        return [Message("user", row.text)]
    history: list[Message] = []
    calls = [
        ToolCall(c["name"], c.get("arguments") or {}, f"call_{row.seq}_{i}")
        for i, c in enumerate(row.tool_calls or [])
    ]
    if calls:
        history.append(Message("assistant", "", tool_calls=tuple(calls)))
        history.extend(
            Message("tool", json.dumps(c.get("result") or {}), name=call.name, tool_call_id=call.id)
            for c, call in zip(row.tool_calls, calls, strict=True)
        )
    if row.text:
        history.append(Message("assistant", row.text))
    return history


async def _last_seq(session: AsyncSession, conversation_id: uuid.UUID) -> int:
    last = await session.scalar(
        select(func.max(MessageRow.seq)).where(MessageRow.conversation_id == conversation_id)
    )
    return last or 0


def latency_summary(timings: list[dict[str, float | None]]) -> dict[str, float | int]:
    """Per-stage means and voice-to-voice p50/p95 over the call's answered turns."""
    summary: dict[str, float | int] = {"turns": len(timings)}
    for stage in ("end_of_turn_s", "stt_s", "llm_ttft_s", "tts_ttfb_s"):
        values = _present(timings, stage)
        if values:
            summary[f"{stage[:-2]}_mean_s"] = round(statistics.fmean(values), 3)
    v2v = sorted(_present(timings, "voice_to_voice_s"))
    if v2v:
        summary["voice_to_voice_p50_s"] = round(statistics.median(v2v), 3)
        summary["voice_to_voice_p95_s"] = round(v2v[min(len(v2v) - 1, int(0.95 * len(v2v)))], 3)
    return summary


def _present(timings: list[dict[str, float | None]], stage: str) -> list[float]:
    return [v for t in timings if (v := t.get(stage)) is not None]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
