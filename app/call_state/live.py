"""Keeps the shared call state (`app.call_state.store`) in step with this replica's live calls."""

from __future__ import annotations

import os
import socket

from app.call_state.store import CallStateStore, LiveCall
from app.calls.recorder import CallStart, CallSummary, TurnRecord


def replica_id() -> str:
    """Names this process among the ingress replicas."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LiveCallRecorder:
    """A CallRecorder that registers each call in the store, updates it per turn, removes it."""

    def __init__(self, store: CallStateStore, replica: str | None = None) -> None:
        self.store = store
        self.replica = replica or replica_id()
        self._turns: dict[str, int] = {}

    async def call_started(self, start: CallStart) -> None:
        """Register the call as held by this replica."""
        self._turns[start.call_sid] = 0
        await self.store.put(
            LiveCall(
                call_sid=start.call_sid,
                org_id=start.agent.org_id or "",
                agent_id=start.agent.id,
                replica=self.replica,
                from_number=start.from_number,
                to_number=start.to_number,
                started_at=start.started_at,
            )
        )

    async def turn_finished(self, record: TurnRecord) -> None:
        """The dashboard's live view: turn count and the latest words of each side."""
        turns = self._turns.get(record.call_sid, 0) + 1
        self._turns[record.call_sid] = turns
        fields: dict[str, str | int | float] = {"turns": turns}
        if record.caller_text:
            fields["last_caller_text"] = record.caller_text[-500:]
        if record.agent_text:
            fields["last_agent_text"] = record.agent_text[-500:]
        await self.store.update(record.call_sid, **fields)

    async def call_ended(self, summary: CallSummary) -> None:
        """The call is no longer live."""
        self._turns.pop(summary.call_sid, None)
        await self.store.remove(summary.call_sid)
