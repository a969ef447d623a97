"""Where a call's transcript goes as the call happens: one record per finished turn."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.conversation.agent import AgentProfile
from app.rag.passage import Citation

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
class CallStart:
    """A call connected: who called whom, and which agent answers."""

    call_sid: str
    stream_sid: str
    agent: AgentProfile
    from_number: str
    to_number: str
    started_at: float  # unix time
    parameters: dict[str, str] = field(default_factory=dict)


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
    caller_audio_s: float = 0.0  # what STT listened to
    citations: list[Citation] = field(default_factory=list)  # knowledge-base passages used
    # By tier, over every model round: {"flash": {"prompt": n, "completion": n}}.
    llm_tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # name, arguments, outcome
    routing: dict[str, Any] = field(default_factory=dict)  # tier chosen and why, what served it
    node: str | None = None  # the flow step after the turn


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

    async def call_started(self, start: CallStart) -> None:
        """A call connected."""
        ...

    async def turn_finished(self, record: TurnRecord) -> None:
        """One exchange is over; persist it now, not at the end of the call."""
        ...

    async def call_ended(self, summary: CallSummary) -> None:
        """The call is over."""
        ...


class FanoutRecorder:
    """Hands every event to several recorders; one failing never stops the others."""

    def __init__(self, *recorders: CallRecorder) -> None:
        self.recorders = recorders

    async def _each(self, method: str, arg: Any) -> None:
        for recorder in self.recorders:
            try:
                await getattr(recorder, method)(arg)
            except Exception:  # a transcript store outage must not end the call
                logger.exception("%s.%s failed", type(recorder).__name__, method)

    async def call_started(self, start: CallStart) -> None:
        """Fan out."""
        await self._each("call_started", start)

    async def turn_finished(self, record: TurnRecord) -> None:
        """Fan out."""
        await self._each("turn_finished", record)

    async def call_ended(self, summary: CallSummary) -> None:
        """Fan out."""
        await self._each("call_ended", summary)
