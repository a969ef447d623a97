"""Calls written to the conversation store as they happen: a conversation row when the call
connects, each finished turn's messages when the turn ends, totals (duration, cost, sentiment,
latency) at the end. A crash loses at most the turn in flight.

Writes go through one ordered queue per call, so the call loop never waits on the database
and a slow or failing database degrades the record, never the call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from app.calls.recorder import CallStart, CallSummary, TurnRecord
from app.transcripts.costs import CallUsage
from app.transcripts.store import CallEnd, ConversationRef, ConversationStore, Opening, TurnEntry

logger = logging.getLogger(__name__)

Write = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class _Call:
    ref: ConversationRef
    writes: asyncio.Queue[Write | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    seq: int = 0
    usage: CallUsage = field(default_factory=CallUsage)
    caller_texts: list[str] = field(default_factory=list)
    timings: list[dict[str, float | None]] = field(default_factory=list)


class StoreCallRecorder:
    """The CallRecorder that keeps calls in the conversation store."""

    def __init__(self, store: ConversationStore, *, flush_timeout_s: float = 10.0) -> None:
        self.store = store
        self.flush_timeout_s = flush_timeout_s
        self._calls: dict[str, _Call] = {}

    async def call_started(self, start: CallStart) -> None:
        """Open the conversation."""
        if start.agent.org_id is None:
            return  # an agent from settings, outside any organization: nothing to own the row
        ref = ConversationRef.new(uuid.UUID(start.agent.org_id), start.started_at)
        call = _Call(ref)
        call.writer = asyncio.create_task(self._drain(start.call_sid, call))
        self._calls[start.call_sid] = call
        opening = Opening(
            agent_id=uuid.UUID(start.agent.id),
            channel="phone",
            call_sid=start.call_sid or None,
            from_number=start.from_number or None,
            to_number=start.to_number or None,
            current_node=start.agent.flow.start if start.agent.flow else None,
        )
        call.writes.put_nowait(lambda: self.store.open(ref, opening))

    async def turn_finished(self, record: TurnRecord) -> None:
        """Queue the turn's messages: the caller's words, then what the agent said."""
        call = self._calls.get(record.call_sid)
        if call is None:
            return
        # Usage is summed here, not in the database, so a turn that failed to save is still
        # billed at the end.
        call.usage.add(
            stt_seconds=record.caller_audio_s,
            tts_chars=len(record.agent_intended_text),
            llm_tokens=record.llm_tokens,
        )
        timings = asdict(record.timings)
        call.timings.append(timings)
        if record.caller_text:
            call.caller_texts.append(record.caller_text)
        entry = TurnEntry(
            caller_text=record.caller_text,
            agent_text=record.agent_text,
            intended_text=record.agent_intended_text,
            started_at=record.started_at,
            ended_at=record.ended_at,
            interrupted=record.interrupted,
            latency={k: v for k, v in timings.items() if v is not None},
            model=record.model,
            tool_calls=record.tool_calls,
            citations=record.citations,
            routing=record.routing,
            llm_tokens=record.llm_tokens,
            node=record.node,
        )
        if not entry.places:
            return
        # Places are taken now, in the order turns end, whatever the database does with them.
        after, call.seq = call.seq, call.seq + entry.places
        call.writes.put_nowait(lambda: self.store.append_turn(call.ref, entry, after_seq=after))

    async def call_ended(self, summary: CallSummary) -> None:
        """Write the totals and wait (bounded) until everything queued for the call is saved."""
        call = self._calls.pop(summary.call_sid, None)
        if call is None:
            return
        end = CallEnd(
            status=summary.status,
            reason=summary.reason,
            ended_at=summary.ended_at,
            duration_s=max(0.0, summary.ended_at - summary.started_at),
            usage=call.usage,
            caller_texts=call.caller_texts,
            timings=call.timings,
        )
        call.writes.put_nowait(lambda: self.store.finish_call(call.ref, end))
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

    async def _drain(self, call_sid: str, call: _Call) -> None:
        while (write := await call.writes.get()) is not None:
            try:
                await write()
            except Exception:
                logger.exception("call %s: could not save to the database", call_sid)
