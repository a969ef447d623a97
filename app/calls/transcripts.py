"""Calls written to Postgres as they happen: a conversation row when the call connects, each
finished turn's messages when the turn ends, totals (duration, cost, sentiment, latency) at the
end. A crash loses at most the turn in flight.

Writes go through one ordered queue per call, so the call loop never waits on the database
and a slow or failing database degrades the record, never the call.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import update

from app.calls.costs import CallUsage, add_tokens, cost_breakdown
from app.calls.recorder import CallStart, CallSummary, TurnRecord
from app.conversation.sentiment import caller_sentiment
from app.db.database import Database
from app.db.models import Conversation, Message
from app.settings import Settings

logger = logging.getLogger(__name__)

Write = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Call:
    conversation_id: uuid.UUID
    org_id: uuid.UUID
    started_at: float
    writes: asyncio.Queue[Write | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    seq: int = 0
    usage: CallUsage = field(default_factory=CallUsage)
    caller_texts: list[str] = field(default_factory=list)
    timings: list[dict[str, float | None]] = field(default_factory=list)


class DatabaseCallRecorder:
    """The CallRecorder that keeps conversations in the database."""

    def __init__(self, db: Database, settings: Settings, *, flush_timeout_s: float = 10.0) -> None:
        self.db = db
        self.settings = settings
        self.flush_timeout_s = flush_timeout_s
        self._calls: dict[str, _Call] = {}

    async def call_started(self, start: CallStart) -> None:
        """Open the conversation row."""
        if start.agent.org_id is None:
            return  # an agent from settings, outside any organization: nothing to own the row
        call = _Call(
            conversation_id=uuid.uuid4(),
            org_id=uuid.UUID(start.agent.org_id),
            started_at=start.started_at,
        )
        call.writer = asyncio.create_task(self._drain(start.call_sid, call))
        self._calls[start.call_sid] = call
        row = Conversation(
            id=call.conversation_id,
            agent_id=uuid.UUID(start.agent.id),
            channel="phone",
            call_sid=start.call_sid or None,
            from_number=start.from_number or None,
            to_number=start.to_number or None,
            status="in_progress",
            started_at=_utc(start.started_at),
            current_node=start.agent.flow.start if start.agent.flow else None,
        )
        call.writes.put_nowait(lambda: self._add(call, [row], None))

    async def turn_finished(self, record: TurnRecord) -> None:
        """Queue the turn's messages: the caller's words, then what the agent said."""
        call = self._calls.get(record.call_sid)
        if call is None:
            return
        call.usage.stt_seconds += record.caller_audio_s
        call.usage.tts_chars += len(record.agent_intended_text)
        add_tokens(call.usage.llm_tokens, record.llm_tokens)
        call.timings.append(asdict(record.timings))
        rows: list[Message] = []
        offset = record.started_at - call.started_at
        if record.caller_text:
            call.caller_texts.append(record.caller_text)
            rows.append(self._message(call, "caller", record.caller_text, offset))
        if record.agent_text or record.agent_intended_text:
            agent = self._message(call, "agent", record.agent_text, offset)
            agent.ended_s = record.ended_at - call.started_at
            agent.interrupted = record.interrupted
            agent.intended_text = record.agent_intended_text
            agent.latency = {k: v for k, v in asdict(record.timings).items() if v is not None}
            agent.model = record.model
            agent.citations = record.citations
            agent.tool_calls = record.tool_calls
            agent.routing = record.routing
            rows.append(agent)
        if rows:
            call.writes.put_nowait(lambda: self._add(call, rows, record.node))

    async def call_ended(self, summary: CallSummary) -> None:
        """Write the totals and wait (bounded) until everything queued for the call is saved."""
        call = self._calls.pop(summary.call_sid, None)
        if call is None:
            return
        duration = max(0.0, summary.ended_at - summary.started_at)
        values = {
            "status": summary.status if summary.status in ("completed", "failed") else "failed",
            "end_reason": summary.reason,
            "ended_at": _utc(summary.ended_at),
            "duration_s": round(duration, 3),
            "cost": cost_breakdown(call.usage, duration, self.settings),
            "sentiment": caller_sentiment(call.caller_texts),
            "latency": latency_summary(call.timings),
        }

        async def finish() -> None:
            async with self.db.tenant(call.org_id) as session:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == call.conversation_id)
                    .values(**values)
                )
                await session.commit()

        call.writes.put_nowait(finish)
        call.writes.put_nowait(None)
        if call.writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(call.writer), self.flush_timeout_s)
            except TimeoutError:
                logger.error(
                    "call %s: transcript still saving after %.0f s",
                    summary.call_sid,
                    self.flush_timeout_s,
                )

    def _message(self, call: _Call, role: str, text: str, offset: float) -> Message:
        call.seq += 1
        return Message(
            conversation_id=call.conversation_id,
            seq=call.seq,
            role=role,
            text=text,
            started_s=round(offset, 3),
        )

    async def _add(
        self, call: _Call, rows: Sequence[Conversation | Message], node: str | None
    ) -> None:
        async with self.db.tenant(call.org_id) as session:
            session.add_all(rows)
            if node is not None:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == call.conversation_id)
                    .values(current_node=node)
                )
            await session.commit()

    async def _drain(self, call_sid: str, call: _Call) -> None:
        while (write := await call.writes.get()) is not None:
            try:
                await write()
            except Exception:
                logger.exception("call %s: could not save to the database", call_sid)


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
