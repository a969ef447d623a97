"""Keeps the shared call state (`app.call_state.store`) in step with this replica's live calls.

Admission (`app.call_state.admission`) files a call when its stream is let in and removes it at
the end; this recorder keeps the entry current as turns finish.
"""

from __future__ import annotations

from app.call_state.store import CallStateStore
from app.calls.recorder import CallStart, CallSummary, TurnRecord


class LiveCallRecorder:
    """A CallRecorder that updates each admitted call's entry as its turns finish."""

    def __init__(self, store: CallStateStore) -> None:
        self.store = store
        self._calls: dict[str, tuple[str, int]] = {}  # sid -> (org, turns so far)

    async def call_started(self, start: CallStart) -> None:
        """Remember the call's org: every write is checked against it."""
        self._calls[start.call_sid] = (start.agent.org_id or "", 0)

    async def turn_finished(self, record: TurnRecord) -> None:
        """The dashboard's live view: turn count and the latest words of each side."""
        if record.call_sid not in self._calls:
            return
        org_id, turns = self._calls[record.call_sid]
        turns += 1
        self._calls[record.call_sid] = (org_id, turns)
        fields: dict[str, str | int | float] = {"turns": turns}
        if record.caller_text:
            fields["last_caller_text"] = record.caller_text[-500:]
        if record.agent_text:
            fields["last_agent_text"] = record.agent_text[-500:]
        await self.store.update(record.call_sid, org_id, **fields)

    async def call_ended(self, summary: CallSummary) -> None:
        """Forget the call (admission removes its entry)."""
        self._calls.pop(summary.call_sid, None)
