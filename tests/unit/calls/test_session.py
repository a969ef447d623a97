"""CallSession against scripted engines and an in-memory Twilio that plays audio at 20 ms a frame,
on the event loop's fast-forwarded clock (looptime): every wait happens in order, none for real."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest

from app.calls.config import CallConfig
from app.calls.floor import is_backchannel
from app.calls.reader import SocketClosed
from app.calls.responder import APOLOGY, ReplicaLoad
from app.calls.session import CallSession
from app.conversation.agent import AgentProfile
from app.conversation.engine import MODEL_HOLDING_PHRASE
from app.conversation.flows import validate_flow
from app.engines import Engines
from app.llm.base import ToolCall
from app.observability.metrics import Metrics
from app.rag.passage import Passage
from app.telephony.audio import frames, pcm16_to_mulaw
from app.tools.registry import TOOL_NAMES
from harness.simulator.phone import Playback, TwilioStream
from tests import factories
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, MemoryRecorder, StallingLLM, silence, tone

# The loop's clock is fast-forwarded (looptime): a call plays out in real order without real waits.
pytestmark = pytest.mark.looptime

STREAM = "MZ" + "0" * 32
CALL = "CA" + "1" * 32


class Phone:
    """Twilio's side of the socket, in memory: the harness's model of the Twilio peer (its wire
    messages and the caller's loudspeaker, which echoes marks as their audio plays) ticking in
    real time, 20 ms a frame."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.twilio = TwilioStream(
            stream_sid=STREAM,
            call_sid=CALL,
            account_sid="AC" + "2" * 32,
            custom_parameters={},
        )
        self.speaker = Playback(self._echo, realtime=True)
        self.player = asyncio.get_event_loop().create_task(self._play())

    # MediaSocket
    async def receive_text(self) -> str:
        item = await self.inbound.get()
        if item is None:
            raise SocketClosed()
        return item

    async def send_text(self, data: str) -> None:
        message = json.loads(data)
        self.sent.append(message)
        if message["event"] == "media":
            audio = base64.b64decode(message["media"]["payload"])
            self.speaker.push_audio(audio, asyncio.get_running_loop().time(), audible=True)
        elif message["event"] == "mark":
            await self.speaker.push_mark(message["mark"]["name"])
        elif message["event"] == "clear":
            await self.speaker.clear()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.player.cancel()

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.02)
            await self.speaker.tick(loop.time())

    async def _echo(self, name: str) -> None:
        self.put(self.twilio.mark(name))

    @property
    def played(self) -> int:
        """Bytes (8 kHz mu-law samples) of agent audio the caller has heard."""
        return self.speaker.played_bytes

    # Caller side
    def put(self, message: dict[str, Any]) -> None:
        self.inbound.put_nowait(json.dumps(message))

    def start(self) -> None:
        self.put(self.twilio.connected())
        self.put(self.twilio.start())

    async def say(self, pcm16: bytes, *, realtime: bool = True) -> None:
        for frame in frames(pcm16_to_mulaw(pcm16)):
            self.put(self.twilio.media(frame))
            if realtime:
                await asyncio.sleep(0.02)

    def press(self, digit: str) -> None:
        self.put(self.twilio.dtmf(digit))

    def stop(self) -> None:
        self.put(self.twilio.stop())

    def media_count(self) -> int:
        return sum(1 for m in self.sent if m["event"] == "media")

    async def until_heard(self, timeout: float = 10.0) -> None:
        """Until some agent audio arrived and all of it has been played."""
        async with asyncio.timeout(timeout):
            while not self.played or not self.speaker.idle:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)


async def make_session(
    phone: Phone,
    *,
    stt: Any = None,
    llm: Any = None,
    tts: Any = None,
    load: ReplicaLoad | None = None,
    lookup: Any = None,
    agent: AgentProfile | None = None,
    **overrides: Any,
) -> tuple[CallSession, MemoryRecorder, Metrics, Engines]:
    # The scripted caller speaks in tones, which WebRTC VAD hears as voice and Silero rightly
    # does not; Silero is tested on real speech in tests/integration.
    overrides.setdefault("vad_engine", "webrtc")
    config = factories.settings(**overrides)
    engines = factories.engines(stt, llm, tts)
    recorder = MemoryRecorder()
    services = factories.call_services(
        config,
        engines,
        agent=agent or factories.agent(),
        recorder=recorder,
        lookup=lookup,
        load=load,
    )
    # Timings on the loop's (fast-forwarded) clock, as the call experiences them.
    clock = asyncio.get_running_loop().time
    session = CallSession(phone, services, CallConfig.from_settings(config), clock=clock)
    phone.twilio.custom_parameters = await factories.stream_parameters(
        services, call_sid=phone.twilio.call_sid, account_sid=phone.twilio.account_sid
    )
    return session, recorder, services.metrics, engines


async def reply_playing(phone: Phone, session: CallSession, played_s: float) -> asyncio.Task[Any]:
    """Start the call, ask a question, return once `played_s` of agent audio has played."""
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(0.8))
    async with asyncio.timeout(5):
        while phone.played < 8000 * played_s:
            await asyncio.sleep(0.05)
    return task


def failed_count(metrics: Metrics) -> float:
    return metrics.calls_total.labels(status="failed")._value.get()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "JSON"),
        ('{"event": "bogus", "streamSid": "MZ1"}', "bogus"),
        (
            '{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound",'
            '"chunk":"1","timestamp":"0","payload":"@@@"}}',
            "base64",
        ),
    ],
)
async def test_bad_input_before_start_fails_the_call_cleanly(raw: str, reason: str) -> None:
    phone = Phone()
    session, recorder, metrics, _ = await make_session(phone)
    phone.put({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    phone.inbound.put_nowait(raw)
    summary = await asyncio.wait_for(session.run(), 5)
    assert summary.status == "failed"
    assert reason.lower() in summary.reason.lower()
    assert failed_count(metrics) == 1
    assert phone.closed is not None and phone.closed[0] == 1008


async def test_bad_audio_mid_call_fails_only_that_call() -> None:
    phone = Phone()
    session, recorder, metrics, _ = await make_session(phone)
    phone.start()
    phone.put(
        {
            "event": "media",
            "sequenceNumber": "2",
            "streamSid": STREAM,
            "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""},
        }
    )
    summary = await asyncio.wait_for(session.run(), 5)
    assert summary.status == "failed" and "payload" in summary.reason
    assert metrics.active_calls._value.get() == 0


async def test_abrupt_disconnect_is_a_failed_call_with_a_reason() -> None:
    phone = Phone()
    session, recorder, metrics, _ = await make_session(phone)
    phone.start()
    phone.inbound.put_nowait(None)
    summary = await asyncio.wait_for(session.run(), 5)
    assert summary.status == "failed" and "without a stop" in summary.reason
    assert recorder.ended and recorder.ended[0].status == "failed"


async def test_greeting_then_a_turn_then_hang_up() -> None:
    phone = Phone()
    stt = FakeSTT(script=["What time do you open?"])
    llm = FakeLLM(replies=["We open at nine. See you then."])
    session, recorder, metrics, engines = await make_session(phone, stt=stt, llm=llm)
    phone.start()
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0.3)
    assert phone.media_count() > 0, "the greeting starts right after start"
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(1.2))
    await asyncio.sleep(2.5)
    phone.stop()
    summary = await asyncio.wait_for(task, 5)

    assert summary.status == "completed"
    assert stt.calls, "the caller's speech was transcribed"
    prompt = llm.seen[-1]
    assert prompt[0].role == "system" and prompt[-1].content == "What time do you open?"
    assert prompt[1].content == "Hello, how can I help?"
    # The model read the turn's prompt up to the caller's words while the greeting played.
    assert llm.prefilled == [prompt[:-1]]
    answered = [t for t in recorder.turns if t.caller_text]
    assert answered[0].agent_text == "We open at nine. See you then."
    assert not answered[0].interrupted
    timings = answered[0].timings
    assert timings.voice_to_voice_s is not None and timings.voice_to_voice_s > 0
    assert timings.stt_s is not None and timings.llm_ttft_s is not None
    assert metrics.e2e_latency._sum.get() > 0


async def test_a_holding_phrase_is_heard_but_not_read_back_as_the_answer() -> None:
    """A late answer is preceded by "One moment, please.": the caller hears it and the
    transcript keeps it, but the model's history does not, or it starts answers with it."""
    phone = Phone()
    stt = FakeSTT(script=["What time do you open?", "And on Sunday?"])
    llm = FakeLLM(replies=["We open at nine.", "Closed on Sunday."], first_token_s=1.5)
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    for _ in range(2):
        await phone.say(tone(0.6) + silence(1.0))
        await asyncio.sleep(4)
    phone.stop()
    await asyncio.wait_for(task, 5)

    answered = [t for t in recorder.turns if t.caller_text]
    assert answered[0].agent_text == f"{MODEL_HOLDING_PHRASE} We open at nine."
    said_before = [m.content for m in llm.seen[-1] if m.role == "assistant"]
    assert said_before == ["Hello, how can I help?", "We open at nine."]


async def test_speculative_reply_is_discarded_when_the_caller_goes_on() -> None:
    phone = Phone()
    stt = FakeSTT(by_audio=lambda pcm: "long" if len(pcm) > 16000 * 1.2 else "short")
    llm = FakeLLM(reply_for=lambda m: f"You said {m[-1].content}.", first_token_s=0.3)
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    before = phone.media_count()
    # 350 ms gap: long enough to prepare an answer, too short to end the turn
    await phone.say(tone(0.6) + silence(0.35) + tone(0.6) + silence(1.5))
    await asyncio.sleep(1.5)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert len(stt.calls) >= 2, "transcribed at the pause and again at the end"
    answered = [t for t in recorder.turns if t.caller_text]
    assert [t.caller_text for t in answered] == ["long"]
    assert answered[0].agent_text == "You said long."
    assert phone.media_count() > before


async def test_barge_in_clears_and_history_keeps_only_what_was_heard() -> None:
    phone = Phone()
    stt = FakeSTT(script=["Tell me everything.", "Stop, what about Sunday?"])
    long_reply = "First sentence is here. " + " ".join(["Then many more words follow."] * 8)
    llm = FakeLLM(replies=[long_reply, "Closed on Sunday."])
    session, recorder, metrics, _ = await make_session(phone, stt=stt, llm=llm)
    task = await reply_playing(phone, session, played_s=3)
    await phone.say(tone(1.0) + silence(1.0))
    await asyncio.sleep(1.5)
    phone.stop()
    await asyncio.wait_for(task, 5)

    assert any(m["event"] == "clear" for m in phone.sent)
    interrupted = [t for t in recorder.turns if t.interrupted]
    assert interrupted, "the long reply was cut"
    heard = interrupted[0].agent_text
    assert heard and len(heard) < len(long_reply)
    assert long_reply.startswith(heard.rstrip("…").rsplit(" ", 1)[0])
    assert metrics.barge_in_latency._sum.get() > 0, "barge-in latency is measured"
    history_reply = [m.content for m in llm.seen[-1] if m.role == "assistant"][-1]
    assert history_reply == heard


async def test_backchannel_does_not_take_the_turn() -> None:
    phone = Phone()
    stt = FakeSTT(script=["Tell me everything.", "uh-huh"])
    long_reply = "First sentence is here. " + " ".join(["Then many more words follow."] * 5)
    llm = FakeLLM(replies=[long_reply, "SHOULD NOT BE SAID"])
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm)
    task = await reply_playing(phone, session, played_s=2)
    await phone.say(tone(0.3) + silence(0.8))
    async with asyncio.timeout(15):
        while not any(t.caller_text == "Tell me everything." for t in recorder.turns):
            await asyncio.sleep(0.1)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert len(llm.seen) == 1, "a backchannel is not answered"
    turn = next(t for t in recorder.turns if t.caller_text == "Tell me everything.")
    assert not turn.interrupted and turn.agent_text == long_reply


async def test_a_stalled_llm_gets_a_spoken_apology() -> None:
    phone = Phone()
    tts = FakeTTS()
    session, recorder, metrics, _ = await make_session(
        phone,
        stt=FakeSTT(script=["Hello?"]),
        llm=StallingLLM(),
        tts=tts,
        llm_first_token_timeout_s=0.3,
    )
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.5) + silence(1.0))
    await asyncio.sleep(1.5)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert APOLOGY in tts.spoken
    assert metrics.turns_total.labels(outcome="llm_timeout")._value.get() == 1


async def test_two_calls_one_broken_the_other_unharmed() -> None:
    good, bad = Phone(), Phone()
    s1, rec1, _, _ = await make_session(
        good, stt=FakeSTT(script=["Hi"]), llm=FakeLLM(replies=["Hey."])
    )
    s2, _, _, _ = await make_session(bad)
    good.start()
    bad.start()
    t1 = asyncio.create_task(s1.run())
    t2 = asyncio.create_task(s2.run())
    await good.until_heard()
    bad.inbound.put_nowait("{garbage")
    assert (await asyncio.wait_for(t2, 5)).status == "failed"
    await good.say(tone(0.5) + silence(1.0))
    await asyncio.sleep(1.5)
    good.stop()
    assert (await asyncio.wait_for(t1, 5)).status == "completed"
    assert any(t.caller_text == "Hi" and t.agent_text == "Hey." for t in rec1.turns)


def test_backchannel_words() -> None:
    assert is_backchannel("Uh-huh.") and is_backchannel("yeah") and is_backchannel("Okay, right.")
    assert not is_backchannel("Wait, what about Sunday?") and not is_backchannel("no")


async def test_an_unfinished_sentence_is_not_sent_to_the_llm_early() -> None:
    phone = Phone()
    stt = FakeSTT(
        by_audio=lambda pcm: "I'd like to book a table." if len(pcm) > 16000 * 1.2 else "I'd like,"
    )
    llm = FakeLLM(reply_for=lambda m: "Sure, for when?")
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(0.4) + tone(0.6) + silence(1.5))
    await asyncio.sleep(1.0)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert len(stt.calls) >= 2
    assert [m[-1].content for m in llm.seen] == ["I'd like to book a table."]


def press(phone: Phone, digit: str) -> None:
    """The caller presses a key (Twilio's `dtmf` message)."""
    phone.press(digit)


async def test_keypad_digits_reach_the_conversation() -> None:
    phone = Phone()
    llm = FakeLLM(replies=["You chose billing."])
    session, recorder, _, _ = await make_session(phone, llm=llm)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    press(phone, "2")
    await asyncio.sleep(1.5)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert "pressed 2" in llm.seen[0][-1].content
    assert any(t.agent_text == "You chose billing." for t in recorder.turns)


async def test_a_keypad_press_moves_the_flow_before_the_turn_is_answered() -> None:
    flow = validate_flow(
        {
            "start": "menu",
            "nodes": [
                {
                    "id": "menu",
                    "instructions": "Offer: 1 for orders, 2 for billing.",
                    "transitions": [{"to": "orders", "dtmf": "1"}, {"to": "billing", "dtmf": "2"}],
                },
                {"id": "orders", "instructions": "Ask for the order number."},
                {"id": "billing", "instructions": "Ask for the invoice number."},
            ],
        },
        known_tools=TOOL_NAMES,
    )
    agent = AgentProfile(
        id="a", name="Menu", system_prompt="Be brief.", greeting="Hello!", flow=flow
    )
    phone = Phone()
    llm = FakeLLM(replies=["What is the invoice number?"])
    session, recorder, _, _ = await make_session(phone, llm=llm, agent=agent)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    press(phone, "2")
    await asyncio.sleep(1.5)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert "Ask for the invoice number." in llm.seen[0][0].content
    (turn,) = [t for t in recorder.turns if t.caller_text]
    assert turn.node == "billing" and turn.routing["node"] == "billing"


async def test_the_agent_hangs_up_after_its_goodbye_is_heard() -> None:
    agent = AgentProfile(
        id="a", name="Desk", system_prompt="Be brief.", greeting="Hello!", tools=("end_call",)
    )
    phone = Phone()
    llm = FakeLLM(replies=[ToolCall("end_call", {"reason": "caller is done"}), "Goodbye!"])
    session, recorder, _, _ = await make_session(
        phone, stt=FakeSTT(script=["Thanks, that's all, bye!"]), llm=llm, agent=agent
    )
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(1.2))
    summary = await asyncio.wait_for(task, 8)  # the caller never hangs up: the agent does
    assert summary.status == "completed"
    assert summary.reason == "the agent ended the call: caller is done"
    (turn,) = [t for t in recorder.turns if t.caller_text]
    assert turn.agent_text == "Goodbye!" and not turn.interrupted
    assert [c["name"] for c in turn.tool_calls] == ["end_call"]


async def test_a_noise_burst_pauses_the_reply_then_it_resumes_in_full() -> None:
    phone = Phone()
    stt = FakeSTT(script=["Tell me everything.", ""])  # the burst transcribes to nothing
    long_reply = "First sentence is here. " + " ".join(["Then many more words follow."] * 5)
    llm = FakeLLM(replies=[long_reply])
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm)
    task = await reply_playing(phone, session, played_s=2)
    await phone.say(tone(0.25, freq=900) + silence(0.8))  # a door slams
    async with asyncio.timeout(20):
        while not any(t.caller_text == "Tell me everything." for t in recorder.turns):
            await asyncio.sleep(0.1)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert any(m["event"] == "clear" for m in phone.sent), "the agent stopped at once"
    turn = next(t for t in recorder.turns if t.caller_text == "Tell me everything.")
    assert not turn.interrupted and turn.agent_text == long_reply, "then said all of it"
    assert len(llm.seen) == 1


async def test_no_speculation_while_other_calls_wait_for_stt() -> None:
    phone = Phone()
    load = ReplicaLoad(stt_inflight=1)  # another call's utterance is being transcribed
    stt = FakeSTT(script=["What time do you open?"])
    llm = FakeLLM(replies=["At seven."])
    session, recorder, metrics, _ = await make_session(
        phone, stt=stt, llm=llm, load=load, speculate_max_stt_inflight=1
    )
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(1.2))
    await asyncio.sleep(1.0)
    phone.stop()
    await asyncio.wait_for(task, 5)
    assert metrics.turns_total.labels(outcome="speculation_skipped")._value.get() >= 1
    assert len(stt.calls) == 1, "transcribed once, when the turn ended"
    assert any(t.agent_text == "At seven." for t in recorder.turns)
    assert load.stt_inflight == 1, "the session's own STT work is counted in and out"


DOCUMENT_ID, CHUNK_ID = uuid.UUID(int=0xD1), uuid.UUID(int=0xC1)
RETURNS = Passage(
    document_id=DOCUMENT_ID,
    document_name="policies.pdf",
    chunk_id=CHUNK_ID,
    position=4,
    heading="Returns",
    text="Unused parts may be sent back within 30 days.",
)


async def one_question(lookup: Any, **overrides: Any) -> tuple[FakeLLM, MemoryRecorder]:
    phone = Phone()
    stt = FakeSTT(script=["Can I send a part back?"])
    llm = FakeLLM(replies=["Yes, within thirty days."])
    session, recorder, _, _ = await make_session(
        phone, stt=stt, llm=llm, lookup=lookup, **overrides
    )
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(1.2))
    async with asyncio.timeout(8):
        while not any(t.caller_text for t in recorder.turns):
            await asyncio.sleep(0.05)
    phone.stop()
    await asyncio.wait_for(task, 5)
    return llm, recorder


async def test_passages_ground_the_question_and_are_cited() -> None:
    asked: list[str] = []

    async def lookup(agent: AgentProfile, question: str) -> list[Passage]:
        asked.append(question)
        return [RETURNS]

    llm, recorder = await one_question(lookup)
    assert asked == ["Can I send a part back?"]
    system, *_, user = llm.seen[-1]
    # The agent's prompt and the date only: the passages never change it, so the model's
    # cached prefix is reused from turn to turn.
    assert system.content.startswith("Be brief.\n\nToday is ") and "30 days" not in system.content
    assert "within 30 days" in user.content and user.content.endswith("Can I send a part back?")
    (turn,) = [t for t in recorder.turns if t.caller_text]
    assert turn.citations == [
        {
            "document_id": str(DOCUMENT_ID),
            "document_name": "policies.pdf",
            "chunk_id": str(CHUNK_ID),
            "position": 4,
            "heading": "Returns",
        }
    ]


@pytest.mark.parametrize("failure", ["slow", "broken"])
async def test_a_failing_lookup_only_loses_the_grounding(failure: str) -> None:
    async def lookup(agent: AgentProfile, question: str) -> list[Passage]:
        if failure == "slow":
            await asyncio.sleep(30)
        raise RuntimeError("database down")

    llm, recorder = await one_question(lookup, rag_timeout_s=0.2)
    assert llm.seen[-1][-1].content == "Can I send a part back?"
    (turn,) = [t for t in recorder.turns if t.caller_text]
    assert turn.agent_text == "Yes, within thirty days." and turn.citations == []


async def test_a_call_ends_at_its_maximum_duration() -> None:
    """A caller who never hangs up (and keeps sending audio) is cut at MAX_CALL_SECONDS."""
    phone = Phone()
    session, recorder, _, _ = await make_session(phone, max_call_seconds=5)
    phone.start()
    task = asyncio.create_task(session.run())
    talker = asyncio.create_task(phone.say(silence(60)))
    summary = await asyncio.wait_for(task, 30)
    talker.cancel()
    assert summary.status == "completed" and summary.reason == "call reached its time limit"
    assert recorder.ended and recorder.ended[0].reason == "call reached its time limit"
