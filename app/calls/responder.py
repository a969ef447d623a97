"""The responder: one caller turn in, the agent's reply out as 20 ms phone frames.

STT → knowledge lookup → conversation engine (streamed) → sentence splitter → TTS, each stage
under its deadline, the frames appended to the turn's reply buffer as they are made. It knows no
socket and no turn-taking: the pump sends the frames, the floor decides whether they may go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.calls.config import Deadlines
from app.calls.ledger import Turn
from app.calls.phrases import PhraseCache
from app.conversation.engine import (
    ConversationEngine,
    ConversationState,
    EndCall,
    HoldingPhrase,
    ToolRan,
    TurnResult,
)
from app.conversation.grounding import KnowledgeLookup
from app.llm.base import Message, TextDelta
from app.observability.metrics import Metrics
from app.privacy import KeypadRun, redact_payment_data
from app.rag.passage import Passage
from app.speech.base import SpeechToText, TextToSpeech
from app.speech.pieces import SentenceSplitter
from app.speech.spoken_text import speakable
from app.telephony.audio import PhoneFrameEncoder

logger = logging.getLogger(__name__)

APOLOGY = "Sorry, I'm having trouble right now. Could you say that again?"
APOLOGY_TIMEOUT_S = 5.0


@dataclass(slots=True)
class ReplicaLoad:
    """Work in flight across all calls of one ingress replica (read by speculation)."""

    stt_inflight: int = 0


class StageTimeout(Exception):
    """A stage of the reply missed its deadline."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"{stage} timed out")
        self.stage = stage


class Responder:
    """Produces the replies of one call."""

    def __init__(
        self,
        *,
        stt: SpeechToText,
        tts: TextToSpeech,
        conversation: ConversationEngine,
        phrases: PhraseCache,
        metrics: Metrics,
        deadlines: Deadlines,
        load: ReplicaLoad,
        lookup: KnowledgeLookup | None,
        clock: Callable[[], float],
        on_audio: Callable[[], None],
    ) -> None:
        self._stt = stt
        self._tts = tts
        self._conversation = conversation
        self._phrases = phrases
        self._metrics = metrics
        self._deadlines = deadlines
        self._load = load
        self._lookup = lookup
        self._clock = clock
        self._on_audio = on_audio  # frames were added to a reply
        # Payment data is cut from the caller's words before they are kept or sent anywhere,
        # unless the agent's org opted out (the session says so once the call is admitted).
        self.redact_payment_data = True
        self._keypad = KeypadRun()

    async def transcribe(self, turn: Turn) -> str:
        """The caller's words in `turn`'s audio ("" for noise)."""
        started = self._clock()
        self._load.stt_inflight += 1
        try:
            transcript = await asyncio.wait_for(
                self._stt.transcribe(turn.audio, 8000), self._deadlines.stt_s
            )
        except TimeoutError as exc:
            raise StageTimeout("stt") from exc
        finally:
            self._load.stt_inflight -= 1
        turn.timings.stt_s = self._clock() - started
        self._metrics.stt_latency.labels(provider=self._stt.name).observe(turn.timings.stt_s)
        heard = transcript.text.strip()
        return redact_payment_data(heard).text if self.redact_payment_data else heard

    async def answer(self, turn: Turn, state: ConversationState, text: str) -> None:
        """Speak the agent's answer to `text` into `turn`'s reply, sentence by sentence."""
        text = self._screen(turn, state, text)
        turn.sources = await self._ground(state, text)
        pieces: asyncio.Queue[str | HoldingPhrase | None] = asyncio.Queue()
        producer = asyncio.create_task(self._generate(turn, state, text, pieces))
        try:
            first = True
            while (piece := await pieces.get()) is not None:
                if isinstance(piece, HoldingPhrase):
                    await self.say(turn, piece.text, state.agent.voice, aside=True)
                else:
                    await self._speak(turn, piece, state.agent.voice, first=first)
                first = False
            await producer  # surfaces a generation error after the spoken part
        finally:
            producer.cancel()

    async def prepare(self, state: ConversationState, greeting: str) -> None:
        """Have the model read the conversation's prompt while the greeting plays; never
        raises (a turn that finds nothing prepared reads it then)."""
        try:
            await self._conversation.prefill(state, [Message("assistant", greeting)])
        except Exception as exc:
            logger.warning("call %s: prefill failed: %r", state.call_sid, exc)

    def _screen(self, turn: Turn, state: ConversationState, text: str) -> str:
        """The caller's words as the history and the transcript keep them (before either does):
        payment data and keyed-in digits cut out, unless the agent's org turned that off."""
        if self.redact_payment_data:
            kept = redact_payment_data(text).text  # key presses, and text not from our STT
            at = turn.speech_end_at if turn.speech_end_at is not None else self._clock()
            kept = self._keypad.screen(kept, at)
            if kept != text:
                logger.info("call %s turn %d: payment data cut out", state.call_sid, turn.id)
            text = kept
        turn.caller_text = text
        return text

    async def say(self, turn: Turn, text: str, voice: str | None, *, aside: bool = False) -> None:
        """A phrase from the cache (greeting, holding phrase, apology) as one piece of the reply;
        an `aside` is heard and transcribed, but is not the agent's answer in its history."""
        started = self._clock()
        audio = await self._phrases.get(text, voice)
        turn.timings.tts_ttfb_s = self._clock() - started
        turn.reply.begin_piece(text, aside=aside)
        turn.reply.add_frames(audio)
        turn.reply.end_piece()
        self._on_audio()

    async def apologise(self, turn: Turn, voice: str | None) -> None:
        """Say sorry in `turn`'s reply; never raises."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.say(turn, APOLOGY, voice), APOLOGY_TIMEOUT_S)

    async def _ground(self, state: ConversationState, text: str) -> list[Passage]:
        """Passages for the caller's words; a slow or failing lookup only loses the grounding."""
        if self._lookup is None:
            return []
        try:
            return await asyncio.wait_for(self._lookup(state.agent, text), self._deadlines.rag_s)
        except Exception as exc:  # TimeoutError included: answer without the documents
            logger.warning("call %s: knowledge lookup failed: %r", state.call_sid, exc)
            return []

    async def _generate(
        self,
        turn: Turn,
        state: ConversationState,
        text: str,
        out: asyncio.Queue[str | HoldingPhrase | None],
    ) -> None:
        """Run the engine for the turn, handing sentences (and holding phrases) to the speaker."""
        splitter = SentenceSplitter()
        started = self._clock()
        turn.result = TurnResult()
        events = self._conversation.respond(
            state, text, turn.sources, turn.result, finished=turn.commit_event
        )
        try:
            async with asyncio.timeout(self._deadlines.llm_total_s):
                iterator = aiter(events)
                first = True
                while True:
                    try:
                        if first:
                            event = await asyncio.wait_for(
                                anext(iterator), self._deadlines.llm_first_token_s
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
                        turn.tool_runs.append(event.outcome)
                        self._metrics.tool_calls_total.labels(
                            tool=event.outcome.name, ok=str(event.outcome.ok).lower()
                        ).inc()
                    elif isinstance(event, EndCall):
                        turn.ends_call = f"the agent ended the call: {event.reason}"
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
        if result.tier is not None:
            self._metrics.llm_tier_total.labels(tier=result.tier.value).inc()
        if result.first_text_s is not None and result.model:
            self._metrics.llm_latency.labels(model=result.model).observe(result.first_text_s)

    async def _speak(self, turn: Turn, text: str, voice: str | None, *, first: bool) -> None:
        """Synthesize one sentence into the turn's reply buffer, chunk by chunk.

        The voice reads the sentence's speakable form ("ten a.m."); the reply keeps the words
        as the model wrote them ("10:00am"), for the transcript and the history.
        """
        reply = turn.reply
        reply.begin_piece(text)
        started = self._clock()
        encoder = PhoneFrameEncoder()
        stream = self._tts.stream(speakable(text), voice)
        try:
            iterator = aiter(stream)
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(iterator), self._deadlines.tts_s)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise StageTimeout("tts") from exc
                if first and turn.timings.tts_ttfb_s is None:
                    turn.timings.tts_ttfb_s = self._clock() - started
                    self._metrics.tts_latency.labels(provider=self._tts.name).observe(
                        turn.timings.tts_ttfb_s
                    )
                self._add_frames(turn, encoder.push(chunk.pcm16, chunk.sample_rate))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        self._add_frames(turn, encoder.flush())
        reply.end_piece()

    def _add_frames(self, turn: Turn, frames: list[bytes]) -> None:
        if frames:
            turn.reply.add_frames(frames)
            self._on_audio()
