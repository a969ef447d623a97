"""CallSession: one Twilio media stream, from `start` to hang-up.

The session composes the parts of a call, each owning its own state: the reader (wire messages
in), the floor (who speaks when), the responder (one task per caller turn: STT → LLM → TTS), the
pump (reply audio and marks out) and the turn ledger (what was said and heard). It carries out
the floor's decisions and ends the call exactly once, whatever ended it. Nothing here knows about
Ray or HTTP: engines arrive through the interfaces in `app.speech` and `app.llm`, the socket
through `MediaSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.call_state.store import StreamGrant
from app.calls.config import CallConfig
from app.calls.floor import Abandon, Action, Answer, Clear, Close, Floor, Note, TurnEnded
from app.calls.ledger import Turn, TurnLedger
from app.calls.phrases import PhraseCache
from app.calls.pump import Pump
from app.calls.reader import (
    CallerAudio,
    KeyPressed,
    MarkPlayed,
    MediaSocket,
    SocketClosed,
    StreamReader,
)
from app.calls.recorder import CallRecorder, CallStart, CallSummary
from app.calls.responder import ReplicaLoad, Responder, StageTimeout
from app.calls.vad import make_vad
from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState
from app.conversation.grounding import KnowledgeLookup
from app.observability.metrics import Metrics
from app.speech.base import SpeechToText, TextToSpeech
from app.telephony.messages import ProtocolError, StartEvent

logger = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455): a refused stream broke our policy, like a protocol error.
_CLOSE_CODES = {"completed": 1000, "failed": 1008, "refused": 1008}


class Agents(Protocol):
    """Finds the agent that answers a call: by the number called (the webhook), then by the ids
    the webhook recorded for the call's media stream."""

    async def for_number(self, number: str) -> AgentProfile | None:
        """The agent for a call to `number`; None when nobody answers it."""
        ...

    async def by_id(self, org_id: str, agent_id: str) -> AgentProfile | None:
        """An enabled agent of `org_id`; None when there is no such agent."""
        ...


class StreamRefused(Exception):
    """A media stream that may not carry a call: no valid grant, a duplicate, an org at its cap.

    `reason` is a short label for metrics; the message says what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AdmittedCall:
    """A call whose stream was let in: what the webhook established about it."""

    call_sid: str
    org_id: str
    agent: AgentProfile
    from_number: str
    to_number: str


class Admission(Protocol):
    """Decides which stream carries which call (`app.call_state.admission.CallAdmission`)."""

    async def issue(self, grant: StreamGrant) -> str:
        """The webhook: a single-use token for the one stream that may carry this call."""
        ...

    async def at_capacity(self, org_id: str) -> bool:
        """The org has as many live calls as it may."""
        ...

    async def admit(self, start: StartEvent) -> AdmittedCall:
        """The stream's call, or StreamRefused."""
        ...

    async def release(self, call: AdmittedCall) -> None:
        """The call is over."""
        ...


@dataclass(slots=True)
class CallServices:
    """What the calls of one ingress replica share."""

    stt: SpeechToText
    tts: TextToSpeech
    conversation: ConversationEngine
    agents: Agents
    admission: Admission
    recorder: CallRecorder
    phrases: PhraseCache
    metrics: Metrics
    lookup: KnowledgeLookup | None = None  # automatic knowledge context for each turn
    load: ReplicaLoad = field(default_factory=ReplicaLoad)


class CallSession:
    """Runs one call. `await run()` returns when the call is over, whatever ended it."""

    def __init__(
        self,
        socket: MediaSocket,
        services: CallServices,
        config: CallConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._socket = socket
        self._services = services
        self._metrics = services.metrics
        self._config = config
        self._clock = clock
        self._reader = StreamReader(socket, config.stream)
        self._vad = make_vad(
            config.listening.vad_engine, aggressiveness=config.listening.vad_aggressiveness
        )
        self._floor = Floor(config.listening)
        self._responder = Responder(
            stt=services.stt,
            tts=services.tts,
            conversation=services.conversation,
            phrases=services.phrases,
            metrics=services.metrics,
            deadlines=config.deadlines,
            load=services.load,
            lookup=services.lookup,
            clock=clock,
            on_audio=self._wake_pump,
        )
        self._pump: Pump | None = None
        self._ledger: TurnLedger | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn_tasks: dict[Turn, asyncio.Task[None]] = {}
        self._started_at = time.time()
        self._closed = False
        self._counted = False  # in the active-calls gauge
        self._hang_up = asyncio.Event()  # the agent ended the call and its goodbye was heard
        self._agent_end_reason = "the agent ended the call"

        self.stream_sid = ""
        self.call_sid = ""
        self.admitted: AdmittedCall | None = None
        self.agent: AgentProfile | None = None
        self.state: ConversationState | None = None
        self.status = "in-progress"
        self.end_reason = ""

    @property
    def turns(self) -> list[Turn]:
        """Every turn of the call so far, the greeting first."""
        return self._floor.turns

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> CallSummary:
        """Serve the call until it ends; cleanup runs exactly once whatever the path."""
        status, reason = "failed", "ended before start"
        try:
            start_timeout = self._config.start_timeout_s
            await asyncio.wait_for(self._start(), timeout=start_timeout)
            self._metrics.active_calls.inc()
            self._counted = True
            self._greet()
            async with asyncio.timeout(self._config.max_call_s):
                status, reason = await self._until_hang_up()
        except StreamRefused as exc:
            self._metrics.streams_refused_total.labels(reason=exc.reason).inc()
            status, reason = "refused", f"stream refused: {exc}"
        except ProtocolError as exc:
            status, reason = "failed", f"protocol error: {exc}"
        except SocketClosed:
            status, reason = "failed", "the media stream closed without a stop message"
        except TimeoutError:
            if self.stream_sid:
                status, reason = "completed", "call reached its time limit"
            else:
                status, reason = "failed", f"no start message within {start_timeout:g} s"
        except Exception as exc:  # one broken call must never take the ingress down
            logger.exception("call %s: unexpected error", self.call_sid or "?")
            status, reason = "failed", f"internal error: {exc!r}"
        finally:
            summary = await self._end(status, reason)
        return summary

    async def _start(self) -> None:
        event: StartEvent = await self._reader.start()
        # Nothing of the call runs before admission: org, agent and numbers are the webhook's.
        admitted = await self._services.admission.admit(event)
        self.admitted, self.agent = admitted, admitted.agent
        self._responder.redact_payment_data = self.agent.redact_payment_data
        self.stream_sid = event.streamSid
        self.call_sid = admitted.call_sid
        self.state = ConversationState.start(
            self.agent,
            call_sid=self.call_sid,
            caller_number=admitted.from_number or None,
        )
        self._ledger = TurnLedger(
            call_sid=self.call_sid,
            state=self.state,
            recorder=self._services.recorder,
            metrics=self._metrics,
        )
        self._pump = Pump(
            self._socket,
            stream_sid=self.stream_sid,
            speaking=lambda: self._floor.speaking,
            on_first_audio=self._on_first_audio,
        )
        self._spawn(self._pump.run())
        logger.info("call %s: stream %s started", self.call_sid, self.stream_sid)
        await self._services.recorder.call_started(
            CallStart(
                call_sid=self.call_sid,
                stream_sid=self.stream_sid,
                agent=self.agent,
                from_number=admitted.from_number,
                to_number=admitted.to_number,
                started_at=self._started_at,
            )
        )

    async def _until_hang_up(self) -> tuple[str, str]:
        """Read the stream until the caller hangs up, or the agent does."""
        reader = asyncio.ensure_future(self._listen())
        hang_up = asyncio.ensure_future(self._hang_up.wait())
        try:
            done, _ = await asyncio.wait({reader, hang_up}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return reader.result()
            return "completed", self._agent_end_reason
        finally:
            reader.cancel()
            hang_up.cancel()

    async def _listen(self) -> tuple[str, str]:
        assert self.state is not None
        async for event in self._reader.events():
            if isinstance(event, CallerAudio):
                voiced = self._vad.is_speech(event.pcm)
                may_speculate = (
                    self._services.load.stt_inflight
                    < self._config.listening.speculate_max_stt_inflight
                )
                actions = self._floor.hear(
                    event.pcm, voiced=voiced, now=self._clock(), may_speculate=may_speculate
                )
                await self._carry_out(actions)
            elif isinstance(event, MarkPlayed):
                self._spawn(self._carry_out(self._floor.mark_played(event.name)))
            elif isinstance(event, KeyPressed):
                logger.info("call %s: caller pressed %s", self.call_sid, event.digit)
                if not self._floor.caller_in_turn:
                    words = self.state.press(event.digit)
                    await self._carry_out(self._floor.key_pressed(words, self._clock()))
        # Twilio stopped the stream (after a transfer the call goes on, with a person).
        return "completed", self._stop_reason()

    def _stop_reason(self) -> str:
        for turn in reversed(self.turns):
            for run in reversed(turn.tool_runs):
                if run.name == "transfer_to_agent" and run.result.get("transferred"):
                    return f"transferred to {run.result.get('to')}"
        return "caller hung up"

    async def _end(self, status: str, reason: str) -> CallSummary:
        self._closed = True
        self.status, self.end_reason = status, reason
        tasks = [*self._tasks, *self._turn_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for action in self._floor.hang_up():
            if isinstance(action, Close):
                await self._record(action)
        log = logger.info if status == "completed" else logger.warning
        log("call %s: ended (%s): %s", self.call_sid or "?", status, reason)
        self._metrics.calls_total.labels(status=status).inc()
        if self._counted:
            self._metrics.active_calls.dec()
        summary = CallSummary(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            status=status,
            reason=reason,
            started_at=self._started_at,
            ended_at=time.time(),
            turns=sum(1 for t in self.turns if t.recorded),
        )
        if self.admitted is not None:
            await self._services.recorder.call_ended(summary)
            with contextlib.suppress(Exception):  # an unreachable store: the entry expires
                await self._services.admission.release(self.admitted)
        with contextlib.suppress(Exception):
            await self._socket.close(_CLOSE_CODES.get(status, 1008), reason[:120])
        return summary

    # ----------------------------------------------------------------------------- the floor

    async def _carry_out(self, actions: list[Action]) -> None:
        """Do what the floor decided, in the order it decided it."""
        for action in actions:
            if isinstance(action, Answer):
                self._turn_tasks[action.turn] = asyncio.create_task(
                    self._respond(action.turn), name=f"turn-{action.turn.id}"
                )
            elif isinstance(action, Abandon):
                self._cancel(action.turn)
            elif isinstance(action, Clear):
                assert self._pump is not None
                await self._pump.clear()
                if action.barge_in_since is not None:
                    self._metrics.barge_in_latency.observe(self._clock() - action.barge_in_since)
                    logger.info("call %s: barge-in on turn %d", self.call_sid, action.turn.id)
            elif isinstance(action, Close):
                if action.interrupted:
                    self._cancel(action.turn)
                await self._record(action)
            elif isinstance(action, TurnEnded):
                self._metrics.turn_end_delay.observe(action.silence_s)
            elif isinstance(action, Note):
                if action.outcome == "backchannel":
                    logger.info("call %s: backchannel %r, resuming", self.call_sid, action.detail)
                self._metrics.turns_total.labels(outcome=action.outcome).inc()
        if actions:  # most frames decide nothing: the pump need not look every 20 ms
            self._wake_pump()

    async def _record(self, close: Close) -> None:
        assert self._ledger is not None
        await self._ledger.close(close.turn, interrupted=close.interrupted)
        if close.turn.ends_call and not close.interrupted:
            self._agent_end_reason = close.turn.ends_call
            self._hang_up.set()

    def _cancel(self, turn: Turn) -> None:
        task = self._turn_tasks.get(turn)
        if task is not None and not task.done():
            task.cancel()

    def _wake_pump(self) -> None:
        if self._pump is not None:
            self._pump.wake()

    def _on_first_audio(self, turn: Turn) -> None:
        now = self._clock()
        turn.reply.first_audio_sent_at = now
        if turn.speech_end_at is not None and turn.id > 0:
            turn.timings.voice_to_voice_s = now - turn.speech_end_at
            self._metrics.e2e_latency.observe(turn.timings.voice_to_voice_s)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------------------- replies

    def _greet(self) -> None:
        assert self.agent is not None and self.state is not None
        turn = self._floor.greet(self._clock())
        self._turn_tasks[turn] = asyncio.create_task(self._say_greeting(turn), name="greeting")
        self._spawn(self._responder.prepare(self.state, self.agent.greeting))

    async def _say_greeting(self, turn: Turn) -> None:
        assert self.agent is not None
        await self._responder.say(turn, self.agent.greeting, self.agent.voice)
        turn.reply.complete = True

    async def _respond(self, turn: Turn) -> None:
        """Answer one caller turn: its words, the floor, then the reply."""
        assert self.state is not None
        try:
            text = turn.caller_text
            if text is None:
                text = turn.caller_text = await self._responder.transcribe(turn)
            if not text:  # noise, a cough: the caller said nothing
                self._floor.nothing_said(turn)
                self._wake_pump()
                return
            if self._floor.transcribed(turn, text):
                await turn.commit_event.wait()
            granted, actions = self._floor.take(turn)
            await self._carry_out(actions)
            if granted:
                await self._responder.answer(turn, self.state, text)
        except asyncio.CancelledError:
            raise
        except StageTimeout as exc:
            logger.warning("call %s turn %d: %s; apologising", self.call_sid, turn.id, exc)
            self._metrics.turns_total.labels(outcome=f"{exc.stage}_timeout").inc()
            await self._apologise(turn)
        except Exception:
            logger.exception(
                "call %s turn %d: the reply failed; apologising", self.call_sid, turn.id
            )
            self._metrics.turns_total.labels(outcome="error").inc()
            await self._apologise(turn)
        finally:
            turn.reply.complete = True
            self._wake_pump()
            if not self._closed:
                self._spawn(self._carry_out(self._floor.reply_done(turn)))

    async def _apologise(self, turn: Turn) -> None:
        if self._closed or self.agent is None or not self._floor.claim(turn):
            return
        await self._responder.apologise(turn, self.agent.voice)
