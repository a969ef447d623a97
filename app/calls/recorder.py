"""Where a call's transcript goes as the call happens: one record per finished turn."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnTimings:
    """Seconds spent in each stage of one turn (None where the stage did not run)."""

    end_of_turn_s: float | None = None
    stt_s: float | None = None
    llm_ttft_s: float | None = None
    tts_ttfb_s: float | None = None
    voice_to_voice_s: float | None = None


@dataclass(slots=True)
class TurnRecord:
    """A finished exchange: what the caller said and what the agent said that was heard."""

    call_sid: str
    turn: int
    caller_text: str
    agent_text: str
    agent_intended_text: str
    interrupted: bool
    started_at: float
    ended_at: float
    timings: TurnTimings = field(default_factory=TurnTimings)
    model: str | None = None


@dataclass(slots=True)
class CallSummary:
    """How a call ended."""

    call_sid: str
    stream_sid: str
    status: str
    reason: str
    started_at: float
    ended_at: float
    turns: int
    metadata: dict[str, Any] = field(default_factory=dict)


class CallRecorder(Protocol):
    """Receives a call's transcript while the call is live."""

    async def call_started(self, call_sid: str, metadata: dict[str, Any]) -> None:
        """A call connected."""
        ...

    async def turn_finished(self, record: TurnRecord) -> None:
        """One exchange is over; persist it now, not at the end of the call."""
        ...

    async def call_ended(self, summary: CallSummary) -> None:
        """The call is over."""
        ...


class JsonlCallRecorder:
    """Appends each event to `<dir>/<call_sid>.jsonl` and keeps recent calls in memory.

    A stand-in until the data layer stores conversations in Postgres: a crash loses at most the
    turn in flight, because every finished turn is flushed as it ends.
    """

    def __init__(self, directory: Path, *, keep: int = 200) -> None:
        self.directory = directory
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self._keep = keep

    async def _append(self, call_sid: str, event: dict[str, Any]) -> None:
        self.calls.setdefault(call_sid, []).append(event)
        while len(self.calls) > self._keep:
            self.calls.pop(next(iter(self.calls)))
        line = json.dumps(event, default=str) + "\n"
        path = self.directory / f"{call_sid}.jsonl"
        try:
            await asyncio.to_thread(_append_line, path, line)
        except OSError:
            logger.exception("call %s: could not write the transcript to %s", call_sid, path)

    async def call_started(self, call_sid: str, metadata: dict[str, Any]) -> None:
        """Record the start of a call."""
        await self._append(call_sid, {"event": "started", **metadata})

    async def turn_finished(self, record: TurnRecord) -> None:
        """Record one finished turn."""
        await self._append(record.call_sid, {"event": "turn", **asdict(record)})

    async def call_ended(self, summary: CallSummary) -> None:
        """Record the end of a call."""
        await self._append(summary.call_sid, {"event": "ended", **asdict(summary)})


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
