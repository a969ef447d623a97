"""The turn ledger: what the caller said and what they heard, kept in the conversation's
history (what the model reads next) and written to the call's transcript as each turn ends."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from app.calls.playback import Reply
from app.calls.recorder import CallRecorder, TurnRecord, TurnTimings
from app.conversation.engine import ConversationState, TurnResult
from app.llm.base import Message
from app.observability.metrics import Metrics
from app.rag.passage import Passage
from app.tools.base import ToolOutcome

PCM_BYTES_PER_S = 2 * 8000  # the caller's audio: 8 kHz 16-bit mono


@dataclass(eq=False)
class Turn:
    """One caller utterance (or key press, or the greeting) and the agent's answer to it."""

    id: int
    audio: bytes
    speech_end_at: float | None
    caller_text: str | None = None  # known up front for DTMF and the greeting
    speech_ms: int = 0
    reply: Reply = field(init=False)
    commit_event: asyncio.Event = field(default_factory=asyncio.Event)  # the turn has ended
    timings: TurnTimings = field(default_factory=TurnTimings)
    result: TurnResult | None = None  # what the engine did: tier, tools, tokens
    tool_runs: list[ToolOutcome] = field(default_factory=list)  # as they happen: a hang-up
    # mid-turn must not lose the booking a tool already made
    sources: list[Passage] = field(default_factory=list)
    ends_call: str | None = None  # the agent hangs up once this reply has been heard, and why
    started_at: float = field(default_factory=time.time)
    discarded: bool = False  # superseded, a backchannel or silence: never recorded
    recorded: bool = False  # in the history and the transcript
    audio_s: float = field(init=False)  # what STT listened to, kept when the audio is freed

    def __post_init__(self) -> None:
        self.reply = Reply(turn=self.id)
        self.audio_s = len(self.audio) / PCM_BYTES_PER_S

    def finish(self, *, recorded: bool) -> None:
        """Nothing more happens to this turn: it is recorded, or discarded. Its audio goes, so
        a long call holds no more caller audio than its unfinished turns."""
        self.recorded, self.discarded = recorded, not recorded
        self.audio = b""

    @property
    def committed(self) -> bool:
        """The caller finished this turn (it is no longer a speculative guess)."""
        return self.commit_event.is_set()

    @property
    def finalized(self) -> bool:
        """Nothing more happens to this turn."""
        return self.discarded or self.recorded

    @property
    def answering(self) -> bool:
        """Its reply is still being produced."""
        return not self.reply.complete


class TurnLedger:
    """Writes each finished turn into the history and the transcript, in the order they end."""

    def __init__(
        self, *, call_sid: str, state: ConversationState, recorder: CallRecorder, metrics: Metrics
    ) -> None:
        self.call_sid = call_sid
        self.state = state
        self._recorder = recorder
        self._metrics = metrics

    async def close(self, turn: Turn, *, interrupted: bool) -> None:
        """Record `turn`: the agent's words as far as the caller heard them."""
        heard = turn.reply.text(played=interrupted)
        result = turn.result
        history = self.state.history
        # The history is appended before anything is awaited, so a turn answered next reads it.
        if turn.caller_text:
            history.append(Message("user", turn.caller_text))
        if result is not None and result.total_s:  # only a finished turn's calls and
            history.extend(result.tool_messages)  # results: never a call left unanswered
        if answer := turn.reply.text(played=interrupted, asides=False):
            history.append(Message("assistant", answer))
        self._metrics.turns_total.labels(outcome="interrupted" if interrupted else "answered").inc()
        flow = self.state.flow
        await self._recorder.turn_finished(
            TurnRecord(
                call_sid=self.call_sid,
                turn=turn.id,
                caller_text=turn.caller_text or "",
                agent_text=heard,
                agent_intended_text=turn.reply.full_text,
                interrupted=interrupted,
                started_at=turn.started_at,
                ended_at=time.time(),
                timings=turn.timings,
                model=result.model if result else None,
                caller_audio_s=turn.audio_s,
                # A reply cut short before its result still drew on the passages it was given.
                citations=[s.citation() for s in (result.sources if result else turn.sources)],
                llm_tokens=result.tokens_by_tier() if result else {},
                tool_calls=[run.record() for run in turn.tool_runs],
                routing=result.routing_record() if result else {},
                node=flow.current if flow else None,
            )
        )
