"""CallSession: one Twilio media stream, from `start` to hang-up.

Three kinds of task share the session: the reader (decode, VAD, turn detection, barge-in), one
responder per caller turn (STT → LLM → sentence splitter → TTS, cancellable as a unit) and the
pump, which sends the audio of the reply being spoken and a mark every 200 ms so the session
knows what the caller actually heard. Nothing here knows about Ray or HTTP: engines arrive through
the interfaces in `app.speech` and `app.llm`, the socket through `MediaSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.calls.phrases import PhraseCache
from app.calls.playback import Reply
from app.calls.recorder import CallRecorder, CallStart, CallSummary, TurnRecord, TurnTimings
from app.calls.turns import TurnDetector, TurnEvent, TurnTiming, sounds_complete
from app.calls.vad import make_vad
from app.conversation.agent import AgentProfile
from app.conversation.engine import (
    ConversationEngine,
    ConversationState,
    EndCall,
    HoldingPhrase,
    ToolRan,
    TurnResult,
)
from app.conversation.grounding import KnowledgeLookup, Source
from app.conversation.sentences import SentenceSplitter
from app.conversation.tools import ToolOutcome
from app.llm.base import LanguageModel, Message, TextDelta
from app.llm.router import RoutingLLM
from app.observability.metrics import Metrics
from app.settings import Settings
from app.speech.base import SpeechToText, TextToSpeech
from app.telephony.audio import FRAME_BYTES, PhoneFrameEncoder, mulaw_to_pcm16
from app.telephony.messages import (
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
    clear_message,
    mark_message,
    media_message,
    parse_inbound,
)

logger = logging.getLogger(__name__)

PCM_FRAME_BYTES = FRAME_BYTES * 2  # 20 ms of 8 kHz 16-bit PCM
APOLOGY = "Sorry, I'm having trouble right now. Could you say that again?"
BACKCHANNELS = frozenset(
    "uh-huh uh huh mm-hmm mhm mm hmm yeah yes yep yup okay ok right sure alright i see got it "
    "oh ah uh um".split()
)


class SocketClosed(Exception):
    """The caller's side of the media stream went away."""


class MediaSocket(Protocol):
    """The WebSocket of one Twilio media stream, as the session needs it."""

    async def receive_text(self) -> str:
        """Next text frame; raises SocketClosed when the peer is gone."""
        ...

    async def send_text(self, data: str) -> None:
        """Send one text frame."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        ...


@dataclass(slots=True)
class Engines:
    """The three model roles a call uses."""

    stt: SpeechToText
    llm: LanguageModel | RoutingLLM  # a bare model is wrapped in a router by the hub
    tts: TextToSpeech


@dataclass(slots=True)
class ReplicaLoad:
    """Work in flight across all calls of one ingress replica.

    Speculation trades CPU for latency; when other calls are already waiting on STT, a guess
    that may be thrown away only delays them, so the session stops guessing until load drops.
    """

    stt_inflight: int = 0


class StageTimeout(Exception):
    """A stage of the reply missed its deadline."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"{stage} timed out")
        self.stage = stage


@dataclass(eq=False)
class Turn:
    """One caller utterance and the agent's answer to it."""

    id: int
    audio: bytes
    speech_end_at: float | None
    caller_text: str | None = None  # known up front for DTMF and the greeting
    speech_ms: int = 0
    reply: Reply = field(init=False)
    commit_event: asyncio.Event = field(default_factory=asyncio.Event)  # the turn has ended
    task: asyncio.Task[None] | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)
    result: TurnResult | None = None  # what the engine did: tier, tools, tokens
    tool_runs: list[ToolOutcome] = field(default_factory=list)  # as they happen: a hang-up
    # mid-turn must not lose the booking a tool already made
    sources: list[Source] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    discarded: bool = False  # superseded, a backchannel or silence: never recorded
    recorded: bool = False  # in the history and the transcript

    def __post_init__(self) -> None:
        self.reply = Reply(turn=self.id)

    @property
    def committed(self) -> bool:
        """The caller finished this turn (it is no longer a speculative guess)."""
        return self.commit_event.is_set()

    @property
    def finalized(self) -> bool:
        """Nothing more happens to this turn."""
        return self.discarded or self.recorded


def is_backchannel(text: str) -> bool:
    """'uh-huh', 'yeah', 'okay' and friends: the caller is listening, not taking the turn."""
    words = [w.strip(".,!?…").lower() for w in text.replace("-", " - ").split()]
    words = [w for w in words if w and w != "-"]
    return len(words) <= 3 and all(w in BACKCHANNELS for w in words)


class CallSession:
    """Runs one call. `await run()` returns when the call is over, whatever ended it."""

    def __init__(
        self,
        socket: MediaSocket,
        *,
        engines: Engines,
        settings: Settings,
        metrics: Metrics,
        recorder: CallRecorder,
        phrases: PhraseCache,
        agent_for: Callable[[dict[str, str]], Awaitable[AgentProfile | None]],
        conversation: ConversationEngine,
        lookup: KnowledgeLookup | None = None,
        load: ReplicaLoad | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._socket = socket
        self._conversation = conversation
        self._engines = engines
        self._settings = settings
        self._metrics = metrics
        self._recorder = recorder
        self._phrases = phrases
        self._load = load or ReplicaLoad()
        self._agent_for = agent_for
        self._lookup = lookup
        self._clock = clock

        self.stream_sid = ""
        self.call_sid = ""
        self.parameters: dict[str, str] = {}
        self.agent: AgentProfile | None = None
        self.state: ConversationState | None = None
        self.turns: list[Turn] = []

        self._vad = make_vad(settings.vad_engine, aggressiveness=settings.vad_aggressiveness)
        self._detector = TurnDetector(
            TurnTiming(
                pause_ms=settings.turn_pause_ms,
                end_ms=settings.turn_end_ms,
                end_incomplete_ms=settings.turn_end_incomplete_ms,
            )
        )
        self._pcm_in = bytearray()
        self._preroll: deque[bytes] = deque(maxlen=15)  # 300 ms before the detected onset
        self._utterance = bytearray()
        self._carry = b""  # audio of a turn the caller talked over before it was answered
        self._stream_ms = 0
        self._last_voiced_at: float | None = None
        self._voiced_ms = 0  # voiced audio in the current caller turn
        self._speech_started_at: float | None = None
        self._pending: Turn | None = None  # the utterance being formed, maybe answered early
        self._speaking: Turn | None = None  # the turn whose reply owns the audio channel
        self._barged_in = False
        self._send_lock = asyncio.Lock()
        self._pump_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn_ids = 0
        self._started_at = time.time()
        self._closed = False
        self._hang_up = asyncio.Event()  # the agent ended the call and its goodbye was heard
        self._end_after: Turn | None = None
        self._agent_end_reason = "the agent ended the call"
        self._stop_reason = "caller hung up"
        self.status = "in-progress"
        self.end_reason = ""

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> CallSummary:
        """Serve the call until it ends; cleanup runs exactly once whatever the path."""
        pump = asyncio.create_task(self._pump(), name="pump")
        status, reason = "failed", "ended before start"
        try:
            await asyncio.wait_for(self._await_start(), timeout=10)
            self._metrics.active_calls.inc()
            self._start_greeting()
            async with asyncio.timeout(self._settings.max_call_seconds):
                status, reason = await self._until_hang_up()
        except ProtocolError as exc:
            status, reason = "failed", f"protocol error: {exc}"
        except SocketClosed:
            status, reason = "failed", "the media stream closed without a stop message"
        except TimeoutError:
            if self.stream_sid:
                status, reason = "completed", "call reached its time limit"
            else:
                status, reason = "failed", "no start message within 10 s"
        except Exception as exc:  # one broken call must never take the ingress down
            logger.exception("call %s: unexpected error", self.call_sid or "?")
            status, reason = "failed", f"internal error: {exc!r}"
        finally:
            summary = await self._close(status, reason, pump)
        return summary

    async def _await_start(self) -> None:
        while True:
            event = parse_inbound(await self._socket.receive_text())
            if isinstance(event, ConnectedEvent):
                continue
            if not isinstance(event, StartEvent):
                raise ProtocolError(f"expected 'start' before '{event.event}'")
            self.stream_sid = event.streamSid
            self.call_sid = event.start.callSid
            self.parameters = dict(event.start.customParameters)
            self.agent = await self._agent_for(self.parameters)
            if self.agent is None:
                raise ProtocolError(f"no agent {self.parameters.get('agentId')!r} answers here")
            self.state = ConversationState.start(
                self.agent,
                call_sid=self.call_sid,
                caller_number=self.parameters.get("from") or None,
            )
            logger.info("call %s: stream %s started", self.call_sid, self.stream_sid)
            await self._recorder.call_started(
                CallStart(
                    call_sid=self.call_sid,
                    stream_sid=self.stream_sid,
                    agent=self.agent,
                    from_number=self.parameters.get("from", ""),
                    to_number=self.parameters.get("to", ""),
                    started_at=self._started_at,
                    parameters=self.parameters,
                )
            )
            return

    async def _until_hang_up(self) -> tuple[str, str]:
        """Read the stream until the caller hangs up, or the agent does."""
        reader = asyncio.ensure_future(self._read_loop())
        hang_up = asyncio.ensure_future(self._hang_up.wait())
        try:
            done, _ = await asyncio.wait({reader, hang_up}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return reader.result()
            return "completed", self._agent_end_reason
        finally:
            reader.cancel()
            hang_up.cancel()

    async def _read_loop(self) -> tuple[str, str]:
        while True:
            event = parse_inbound(await self._socket.receive_text())
            if isinstance(event, MediaEvent):
                self._check_stream(event.streamSid)
                await self._on_audio(event.audio)
            elif isinstance(event, MarkEvent):
                self._check_stream(event.streamSid)
                self._on_mark(event.mark.name)
            elif isinstance(event, DtmfEvent):
                self._check_stream(event.streamSid)
                self._on_dtmf(event.dtmf.digit)
            elif isinstance(event, StopEvent):
                # After a transfer Twilio stops the stream: the call goes on, with a person.
                return "completed", self._stop_reason
            elif isinstance(event, StartEvent):
                raise ProtocolError("a second 'start' on the same stream")

    def _check_stream(self, stream_sid: str) -> None:
        if stream_sid != self.stream_sid:
            raise ProtocolError(f"message for stream {stream_sid} on stream {self.stream_sid}")

    async def _close(self, status: str, reason: str, pump: asyncio.Task[None]) -> CallSummary:
        self._closed = True
        self.status, self.end_reason = status, reason
        tasks = [pump, *self._tasks]
        for turn in self.turns:
            if turn.task is not None:
                tasks.append(turn.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for turn in self.turns:
            if turn.reply.first_audio_sent_at is not None or turn.caller_text:
                await self._finalize(turn, interrupted=not turn.reply.finished_playing)
        log = logger.info if status == "completed" else logger.warning
        log("call %s: ended (%s): %s", self.call_sid or "?", status, reason)
        self._metrics.calls_total.labels(status=status).inc()
        if self.stream_sid:
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
        if self.call_sid:
            await self._recorder.call_ended(summary)
        with contextlib.suppress(Exception):
            await self._socket.close(1000 if status == "completed" else 1008, reason[:120])
        return summary

    # ----------------------------------------------------------------------------- caller audio

    async def _on_audio(self, mulaw: bytes) -> None:
        self._pcm_in += mulaw_to_pcm16(mulaw)
        while len(self._pcm_in) >= PCM_FRAME_BYTES:
            frame = bytes(self._pcm_in[:PCM_FRAME_BYTES])
            del self._pcm_in[:PCM_FRAME_BYTES]
            await self._on_frame(frame)

    async def _on_frame(self, pcm: bytes) -> None:
        now = self._clock()
        t_ms = self._stream_ms
        self._stream_ms += 20
        speech = self._vad.is_speech(pcm)
        self._preroll.append(pcm)
        if self._detector.in_turn:
            self._utterance += pcm
        if speech:
            self._last_voiced_at = now
            self._voiced_ms += 20
        for detection in self._detector.feed(speech, t_ms):
            if detection.event is TurnEvent.STARTED:
                self._speech_started_at = now - (t_ms + 20 - detection.at_ms) / 1000
                self._on_caller_started()
            elif detection.event is TurnEvent.PAUSED:
                self._on_caller_paused()
            elif detection.event is TurnEvent.RESUMED:
                self._on_caller_resumed()
            elif detection.event is TurnEvent.DONE:
                self._on_caller_done(now)
        await self._maybe_barge_in(now)

    def _on_caller_started(self) -> None:
        self._utterance = bytearray(b"".join(self._preroll))
        self._voiced_ms = self._detector.timing.onset_ms
        # The caller spoke again before hearing any answer: answer both utterances together.
        for turn in self.turns:
            if turn.committed and not turn.finalized and turn.reply.sent == 0 and turn.audio:
                if turn.task is not None and not turn.task.done():
                    self._carry = turn.audio + b"\x00\x00" * 1600
                    self._cancel(turn)

    def _on_caller_paused(self) -> None:
        # Answer speculatively: by the time the silence is long enough to end the turn,
        # the transcript and the first words of the reply are ready.
        if self._load.stt_inflight >= self._settings.speculate_max_stt_inflight:
            self._metrics.turns_total.labels(outcome="speculation_skipped").inc()
            return
        self._pending = self._start_turn(bytes(self._utterance), committed=False)

    def _on_caller_resumed(self) -> None:
        turn, self._pending = self._pending, None
        if turn is not None and turn.reply.first_audio_sent_at is None:
            self._cancel(turn)
            self._metrics.turns_total.labels(outcome="speculation_discarded").inc()

    def _on_caller_done(self, now: float) -> None:
        turn, self._pending = self._pending, None
        if turn is None:
            turn = self._start_turn(bytes(self._utterance), committed=True)
        turn.commit_event.set()
        turn.reply.released = self._speaking is turn or self._speaking is None
        if self._last_voiced_at is not None:
            delay = now - self._last_voiced_at
            turn.timings.end_of_turn_s = delay
            self._metrics.turn_end_delay.observe(delay)
        self._utterance = bytearray()
        self._barged_in = False
        self._pump_wake.set()

    async def _maybe_barge_in(self, now: float) -> None:
        speaking = self._speaking
        if speaking is None or self._barged_in or not self._detector.speaking:
            return
        reply = speaking.reply
        if not reply.pending or reply.first_audio_sent_at is None:
            return
        if self._detector.current_speech_ms < self._settings.barge_in_min_speech_ms:
            return
        self._barged_in = True
        await self._clear(reply)
        if self._speech_started_at is not None:
            self._metrics.barge_in_latency.observe(self._clock() - self._speech_started_at)
        logger.info("call %s: barge-in on turn %d", self.call_sid, speaking.id)

    async def _clear(self, reply: Reply) -> None:
        """Stop the caller hearing `reply` now; it may resume if this was only a backchannel."""
        reply.released = False
        reply.rewind_to_played()
        await self._send(clear_message(self.stream_sid))

    def _on_mark(self, name: str) -> None:
        for turn in self.turns:
            if not turn.finalized and turn.reply.on_mark(name):
                if turn.reply.finished_playing:
                    self._spawn(self._finalize(turn, interrupted=False))
                return

    def _on_dtmf(self, digit: str) -> None:
        logger.info("call %s: caller pressed %s", self.call_sid, digit)
        if self._detector.in_turn:
            return
        if self.state is not None:
            self._start_turn(b"", committed=True, text=self.state.press(digit))

    # ----------------------------------------------------------------------------- responders

    def _start_turn(self, audio: bytes, *, committed: bool, text: str | None = None) -> Turn:
        self._turn_ids += 1
        if audio and self._carry:
            audio, self._carry = self._carry + audio, b""
        turn = Turn(
            id=self._turn_ids,
            audio=audio,
            speech_end_at=self._last_voiced_at if audio else self._clock(),
            caller_text=text,
            speech_ms=self._voiced_ms if audio else 0,
        )
        if committed:
            turn.commit_event.set()
        turn.reply.released = committed and self._speaking is None
        self.turns.append(turn)
        turn.task = asyncio.create_task(self._respond(turn), name=f"turn-{turn.id}")
        return turn

    def _start_greeting(self) -> None:
        assert self.agent is not None
        turn = Turn(id=0, audio=b"", speech_end_at=self._clock(), caller_text="")
        turn.commit_event.set()
        turn.reply.released = True
        self.turns.append(turn)
        self._speaking = turn
        turn.task = asyncio.create_task(self._greet(turn), name="greeting")

    async def _greet(self, turn: Turn) -> None:
        assert self.agent is not None
        await self._say_cached(turn, self.agent.greeting)
        turn.reply.complete = True

    def _cancel(self, turn: Turn) -> None:
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()
        turn.discarded = True
        if self._speaking is turn:
            self._speaking = None

    async def _respond(self, turn: Turn) -> None:
        try:
            text = turn.caller_text
            if text is None:
                text = await self._transcribe(turn)
                turn.caller_text = text
            if not text:  # noise, a cough: the caller said nothing
                turn.discarded = True
                self._resume_paused_reply()
                return
            if self._pending is turn:
                complete = sounds_complete(text)
                self._detector.hint_complete(complete)
                if not complete:
                    # "Hi," or "I'd like to book a": the caller is most likely going on, so
                    # generating now would only take the CPU from the calls that need it.
                    await turn.commit_event.wait()
            if not await self._take_the_floor(turn):
                return
            await self._answer(turn, text)
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
            self._pump_wake.set()
            if turn.reply.first_audio_sent_at is None and not turn.reply.frames:
                if turn.caller_text and not turn.finalized and self._speaking is turn:
                    self._spawn(self._finalize(turn, interrupted=False))

    async def _transcribe(self, turn: Turn) -> str:
        started = self._clock()
        self._load.stt_inflight += 1
        try:
            transcript = await asyncio.wait_for(
                self._engines.stt.transcribe(turn.audio, 8000), self._settings.stt_timeout_s
            )
        except TimeoutError as exc:
            raise StageTimeout("stt") from exc
        finally:
            self._load.stt_inflight -= 1
        turn.timings.stt_s = self._clock() - started
        self._metrics.stt_latency.labels(provider=self._engines.stt.name).observe(
            turn.timings.stt_s
        )
        return transcript.text.strip()

    async def _take_the_floor(self, turn: Turn) -> bool:
        """Settle who speaks when the caller talked while a reply was playing.

        A backchannel resumes the paused reply and is not answered; anything else ends that
        reply where the caller stopped hearing it, and this turn is answered.
        """
        current = self._speaking
        if current is not None and current is not turn and not current.finalized:
            if current.reply.first_audio_sent_at is not None and not current.reply.finished_playing:
                if turn.caller_text is not None and is_backchannel(turn.caller_text):
                    if turn.speech_ms <= self._settings.backchannel_max_ms or not turn.audio:
                        logger.info(
                            "call %s: backchannel %r, resuming", self.call_sid, turn.caller_text
                        )
                        self._metrics.turns_total.labels(outcome="backchannel").inc()
                        turn.discarded = True
                        self._resume_paused_reply()
                        return False
                if current.reply.released:
                    await self._clear(current.reply)
                await self._finalize(current, interrupted=True)
            else:
                await self._finalize(current, interrupted=False)
        self._speaking = turn
        turn.reply.released = turn.committed
        return True

    def _resume_paused_reply(self) -> None:
        """Carry on with a reply a barge-in paused, from where the caller stopped hearing it."""
        self._barged_in = False
        current = self._speaking
        if current is not None and not current.finalized and not current.reply.released:
            if current.reply.first_audio_sent_at is not None:
                current.reply.released = True
                self._pump_wake.set()

    async def _answer(self, turn: Turn, text: str) -> None:
        assert self.state is not None
        turn.sources = await self._ground(text)
        pieces: asyncio.Queue[str | HoldingPhrase | None] = asyncio.Queue()
        producer = asyncio.create_task(self._generate(turn, text, pieces))
        try:
            first = True
            while (piece := await pieces.get()) is not None:
                if isinstance(piece, HoldingPhrase):
                    await self._say_cached(turn, piece.text)
                else:
                    await self._speak(turn, piece, first=first)
                first = False
            await producer  # surfaces a generation error after the spoken part
        finally:
            producer.cancel()

    async def _ground(self, text: str) -> list[Source]:
        """Passages for the caller's words; a slow or failing lookup only loses the grounding."""
        if self._lookup is None or self.agent is None:
            return []
        try:
            return await asyncio.wait_for(
                self._lookup(self.agent, text), self._settings.rag_timeout_s
            )
        except Exception as exc:  # TimeoutError included: answer without the documents
            logger.warning("call %s: knowledge lookup failed: %r", self.call_sid, exc)
            return []

    async def _generate(
        self, turn: Turn, text: str, out: asyncio.Queue[str | HoldingPhrase | None]
    ) -> None:
        """Run the engine for the turn, handing sentences (and holding phrases) to the speaker."""
        assert self.state is not None
        splitter = SentenceSplitter()
        started = self._clock()
        turn.result = TurnResult()
        events = self._conversation.respond(self.state, text, turn.sources, turn.result)
        try:
            async with asyncio.timeout(self._settings.llm_total_timeout_s):
                iterator = aiter(events)
                first = True
                while True:
                    try:
                        if first:
                            event = await asyncio.wait_for(
                                anext(iterator), self._settings.llm_first_token_timeout_s
                            )
                        else:
                            event = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        raise StageTimeout("llm") from exc
                    first = False
                    if isinstance(event, TextDelta):
                        if turn.timings.llm_ttft_s is None:
                            turn.timings.llm_ttft_s = self._clock() - started
                        for sentence in splitter.push(event.text):
                            out.put_nowait(sentence)
                    elif isinstance(event, HoldingPhrase):
                        out.put_nowait(event)
                    elif isinstance(event, ToolRan):
                        self._on_tool(turn, event.outcome)
                    elif isinstance(event, EndCall):
                        self._end_after = turn
                        self._agent_end_reason = f"the agent ended the call: {event.reason}"
                    elif isinstance(event, TurnResult):
                        self._on_result(turn, event)
            for sentence in splitter.flush():
                out.put_nowait(sentence)
        finally:
            out.put_nowait(None)  # the speaker stops waiting whatever happened here
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

    def _on_result(self, turn: Turn, result: TurnResult) -> None:
        turn.result = result
        tier = result.tier
        if tier is not None:
            self._metrics.llm_tier_total.labels(tier=tier.value).inc()
        if result.first_text_s is not None and result.model:
            self._metrics.llm_latency.labels(model=result.model).observe(result.first_text_s)

    def _on_tool(self, turn: Turn, run: ToolOutcome) -> None:
        turn.tool_runs.append(run)
        self._metrics.tool_calls_total.labels(tool=run.name, ok=str(run.ok).lower()).inc()
        if run.name == "transfer_to_agent" and run.result.get("transferred"):
            self._stop_reason = f"transferred to {run.result.get('to')}"

    async def _speak(self, turn: Turn, text: str, *, first: bool) -> None:
        """Synthesize one sentence into the turn's reply buffer, chunk by chunk."""
        assert self.agent is not None
        reply = turn.reply
        reply.begin_piece(text)
        started = self._clock()
        encoder = PhoneFrameEncoder()
        stream = self._engines.tts.stream(text, self.agent.voice)
        try:
            iterator = aiter(stream)
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(iterator), self._settings.tts_timeout_s)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise StageTimeout("tts") from exc
                if first and turn.timings.tts_ttfb_s is None:
                    turn.timings.tts_ttfb_s = self._clock() - started
                    self._metrics.tts_latency.labels(provider=self._engines.tts.name).observe(
                        turn.timings.tts_ttfb_s
                    )
                self._add_frames(reply, encoder.push(chunk.pcm16, chunk.sample_rate))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        self._add_frames(reply, encoder.flush())
        reply.end_piece()

    def _add_frames(self, reply: Reply, new_frames: list[bytes]) -> None:
        if new_frames:
            reply.add_frames(new_frames)
            self._pump_wake.set()

    async def _say_cached(self, turn: Turn, text: str) -> None:
        assert self.agent is not None
        started = self._clock()
        audio = await self._phrases.get(text, self.agent.voice)
        turn.timings.tts_ttfb_s = self._clock() - started
        turn.reply.begin_piece(text)
        turn.reply.add_frames(audio)
        turn.reply.end_piece()
        self._pump_wake.set()

    async def _apologise(self, turn: Turn) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            if self._speaking is None or self._speaking is turn:
                self._speaking = turn
                turn.reply.released = turn.committed or turn.reply.released
                await asyncio.wait_for(self._say_cached(turn, APOLOGY), 5)

    # ----------------------------------------------------------------------------- outbound

    async def _pump(self) -> None:
        """Send the speaking reply's audio as it becomes available, with marks."""
        while True:
            await self._pump_wake.wait()
            self._pump_wake.clear()
            turn = self._speaking
            if turn is None:
                continue
            reply = turn.reply
            while reply.released and reply.sent < len(reply.frames) and self._speaking is turn:
                index = reply.sent
                mark = reply.mark_after(index)
                reply.sent += 1
                await self._send(media_message(self.stream_sid, reply.frames[index]))
                if reply.first_audio_sent_at is None:
                    self._on_first_audio(turn)
                if mark is not None:
                    await self._send(mark_message(self.stream_sid, mark))

    def _on_first_audio(self, turn: Turn) -> None:
        now = self._clock()
        turn.reply.first_audio_sent_at = now
        if turn.speech_end_at is not None and turn.id > 0:
            turn.timings.voice_to_voice_s = now - turn.speech_end_at
            self._metrics.e2e_latency.observe(turn.timings.voice_to_voice_s)

    async def _send(self, data: str) -> None:
        async with self._send_lock:
            await self._socket.send_text(data)

    # ----------------------------------------------------------------------------- transcript

    async def _finalize(self, turn: Turn, *, interrupted: bool) -> None:
        if turn.finalized:
            return
        turn.recorded = True
        if turn.task is not None and not turn.task.done() and interrupted:
            turn.task.cancel()
        if self._speaking is turn:
            self._speaking = None
        heard = turn.reply.played_text() if interrupted else turn.reply.full_text
        result = turn.result
        if self.state is not None:
            history = self.state.history
            if turn.caller_text:
                history.append(Message("user", turn.caller_text))
            if result is not None and result.total_s:  # only a finished turn's calls and
                history.extend(result.tool_messages)  # results: never a call left unanswered
            if heard:
                history.append(Message("assistant", heard))
        if self._end_after is turn and not interrupted:
            self._hang_up.set()
        self._metrics.turns_total.labels(outcome="interrupted" if interrupted else "answered").inc()
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
                caller_audio_s=len(turn.audio) / (2 * 8000),
                # A reply cut short before its result still drew on the passages it was given.
                citations=[s.citation() for s in (result.sources if result else turn.sources)],
                llm_tokens=result.tokens_by_tier() if result else {},
                tool_calls=[run.record() for run in turn.tool_runs],
                routing=result.routing_record() if result else {},
                node=self.state.flow.current if self.state and self.state.flow else None,
            )
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
