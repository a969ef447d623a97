"""The call simulator against a tiny fake Velox server that speaks Twilio's Media Streams."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator

from app.telephony.audio import frames, mulaw_to_pcm16, pcm16_to_mulaw
from harness.simulator import (
    CallerTurn,
    CallSetupError,
    load_wav_8k,
    mulaw_to_wav,
    open_stream,
    place_call,
    save_wav,
)
from harness.simulator.caller import FRAME_S
from harness.simulator.phone import Playback

RATE = 8000
VOICED_RMS = 500.0
# On virtual time a message may still land one 20 ms step late when the event loop is busy.
ONE_STEP = 1.5 * FRAME_S


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> bytes:
    """A sine tone as 16-bit PCM: loud enough to count as speech."""
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def rms(mulaw: bytes) -> float:
    pcm = np.frombuffer(mulaw_to_pcm16(mulaw), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0


class VirtualTime:
    """The call's time as both ends read it: it moves on only when the simulated caller's 20 ms
    pacing waits (which still takes that long for real, so the audio flows as on a phone line),
    plus a nanosecond per reading so that no two events share an instant. Timings on it count
    audio frames, whatever else the machine is doing."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-9
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.now += seconds


@dataclass
class FakeState:
    """How the fake server behaves, and what it saw."""

    stream_url: str | None = None  # None: ws://<the host it was called on>/voice/stream
    reject: bool = False
    auth_token: str | None = None
    public_url: str | None = None  # as VELOX_PUBLIC_URL: the URL Twilio calls, behind a proxy
    forwarded: list[tuple[str, str]] = field(default_factory=list)
    reply_lengths_s: list[float] = field(default_factory=lambda: [0.5])
    misbehave: bool = False
    hang_up_after_greeting: bool = False
    webhook_forms: list[dict[str, str]] = field(default_factory=list)
    signatures_valid: list[bool] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    marks_sent: dict[str, float] = field(default_factory=dict)
    mark_echoes: dict[str, float] = field(default_factory=dict)
    clears_sent: list[float] = field(default_factory=list)
    clock: VirtualTime = field(default_factory=VirtualTime)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m.get("event") == name]


def fake_app(state: FakeState) -> FastAPI:
    """Greets with a 0.5 s tone; answers each ~0.3 s utterance after 0.4 s of silence."""
    app = FastAPI()

    @app.post("/voice/incoming")
    async def incoming(request: Request) -> Response:
        # Parsed by hand, so the fake depends on nothing beyond Starlette itself.
        form = dict(parse_qsl((await request.body()).decode()))
        state.webhook_forms.append(form)
        if state.auth_token is not None:
            signature = request.headers.get("x-twilio-signature", "")
            called = f"{state.public_url}/voice/incoming" if state.public_url else str(request.url)
            validator = RequestValidator(state.auth_token)
            state.signatures_valid.append(validator.validate(called, form, signature))
        if "x-forwarded-host" in request.headers:
            state.forwarded.append(
                (request.headers["x-forwarded-proto"], request.headers["x-forwarded-host"])
            )
        if state.reject:
            twiml = "<Response><Say>Sorry, we are closed.</Say><Hangup/></Response>"
        else:
            url = state.stream_url or f"ws://{request.url.netloc}/voice/stream"
            if state.public_url:
                url = state.public_url.replace("https://", "wss://") + "/voice/stream"
            twiml = (
                f'<Response><Connect><Stream url="{url}">'
                '<Parameter name="agentId" value="demo"/>'
                "</Stream></Connect></Response>"
            )
        return Response(content=twiml, media_type="text/xml")

    @app.websocket("/voice/stream")
    async def stream(ws: WebSocket) -> None:
        if state.auth_token is not None:
            public_url = state.stream_url or f"ws://{ws.url.netloc}/voice/stream"
            if state.public_url:
                public_url = state.public_url.replace("https://", "wss://") + "/voice/stream"
            signature = ws.headers.get("x-twilio-signature", "")
            valid = RequestValidator(state.auth_token).validate(public_url, {}, signature)
            state.signatures_valid.append(valid)
            if not valid:
                await ws.close(code=1008)  # before accept: the handshake is refused with 403
                return
        await ws.accept()
        stream_sid = ""
        playing: str | None = None  # the mark behind the audio the caller is hearing
        cleared = False
        voiced = silent = replies = 0

        async def say(seconds: float, name: str) -> None:
            nonlocal playing, cleared
            for frame in frames(pcm16_to_mulaw(tone(seconds))):
                payload = base64.b64encode(frame).decode()
                await ws.send_json(
                    {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}
                )
            await ws.send_json({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
            state.marks_sent[name] = state.clock()
            playing, cleared = name, False

        try:
            while True:
                try:
                    message = json.loads(await ws.receive_text())
                except ValueError:
                    continue  # a test sent garbage on purpose
                now = state.clock()
                state.received.append((now, message))
                event = message["event"]
                if event == "start":
                    stream_sid = message["streamSid"]
                    if state.misbehave:
                        await ws.send_text("this is not json")
                        await ws.send_json({"event": "media", "streamSid": "MZwrong"})
                        await ws.send_json(
                            {"event": "media", "streamSid": stream_sid, "media": {"payload": "!"}}
                        )
                        await ws.send_json({"event": "dance", "streamSid": stream_sid})
                    await say(0.5, "greeting")
                elif event == "mark":
                    name = message["mark"]["name"]
                    state.mark_echoes[name] = now
                    if name == playing:
                        playing = None
                    if name == "greeting" and state.hang_up_after_greeting:
                        await ws.close()
                        return
                elif event == "media":
                    loud = rms(base64.b64decode(message["media"]["payload"])) > VOICED_RMS
                    if loud:
                        voiced, silent = voiced + 1, 0
                        if playing is not None and not cleared and voiced >= 3:
                            # The caller talks over the agent: stop its audio (barge-in).
                            await ws.send_json({"event": "clear", "streamSid": stream_sid})
                            state.clears_sent.append(state.clock())
                            cleared = True
                    elif voiced >= 15:
                        silent += 1
                        if silent >= 20:
                            lengths = state.reply_lengths_s
                            length = lengths[min(replies, len(lengths) - 1)]
                            replies += 1
                            voiced = silent = 0
                            await say(length, f"reply-{replies}")
                elif event == "stop":
                    break
        except WebSocketDisconnect:
            pass

    return app


@dataclass
class FakeServer:
    base_url: str
    state: FakeState

    def virtual_time(self) -> dict[str, Any]:
        """place_call's options that put the caller on the fake's clock."""
        return {"clock": self.state.clock, "sleep": self.state.clock.sleep}


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    state = FakeState()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake_app(state),
        log_level="warning",
        ws="websockets-sansio",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    for _ in range(500):  # bounded, so a server that cannot start fails the test
        if uv.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert uv.started, "the fake server did not start"
    try:
        yield FakeServer(base_url=f"http://127.0.0.1:{port}", state=state)
    finally:
        uv.should_exit = True
        await task
        sock.close()


def utterance(seconds: float = 0.36) -> bytes:
    return tone(seconds, freq=300.0)


async def test_call_speaks_twilio_and_measures_the_turn(server: FakeServer) -> None:
    events: list[str] = []
    result = await place_call(
        server.base_url,
        [CallerTurn(audio_pcm16_8k=utterance(), text="hello")],
        reply_silence_s=0.25,
        timeout_s=5,
        on_event=lambda name, _: events.append(name),
        **server.virtual_time(),
    )
    state = server.state
    assert result.violations == []
    assert result.ended_by == "caller"

    # The webhook carried Twilio's incoming-call parameters.
    form = state.webhook_forms[0]
    assert form["CallSid"] == result.call_sid and form["CallSid"].startswith("CA")
    assert len(form["CallSid"]) == 34
    assert form["CallStatus"] == "ringing" and form["Direction"] == "inbound"
    assert form["To"] == form["Called"] == "+15550100"

    # connected, then start with the TwiML's <Parameter>s, then numbered messages.
    messages = [m for _, m in state.received]
    assert messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = messages[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert start["start"]["customParameters"] == {"agentId": "demo"}
    assert start["start"]["callSid"] == result.call_sid
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert start["streamSid"] == result.stream_sid
    numbers = [int(m["sequenceNumber"]) for m in messages[1:]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert messages[-1]["event"] == "stop"
    assert messages[-1]["stop"] == {"accountSid": result.account_sid, "callSid": result.call_sid}

    media = state.events("media")
    assert [m["media"]["chunk"] for m in media] == [str(i) for i in range(1, len(media) + 1)]
    assert all(m["media"]["timestamp"] == str(i * 20) for i, m in enumerate(media))
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    assert all(m["media"]["track"] == "inbound" for m in media)

    # Paced: one frame per 20 ms step of the pacing (the only thing that moves the clock).
    media_times = [t for t, m in state.received if m.get("event") == "media"]
    span = media_times[-1] - media_times[0]
    assert span == pytest.approx((len(media_times) - 1) * FRAME_S, abs=ONE_STEP)

    # Marks come back once the 0.5 s of audio before them has played (echoed on the tick
    # after its last 20 ms), not on arrival.
    assert result.marks_echoed == ["greeting", "reply-1"]
    for name in ("greeting", "reply-1"):
        delay = state.mark_echoes[name] - state.marks_sent[name]
        assert delay == pytest.approx(0.5 + FRAME_S, abs=ONE_STEP), (name, delay)

    # The fake greets on `start`, before the caller's first 20 ms step is over.
    assert result.greeting_latency_s is not None and 0 < result.greeting_latency_s < ONE_STEP
    assert len(result.greeting_audio) == 4000
    turn = result.turns[0]
    assert turn.text == "hello" and not turn.timed_out
    # The fake answers after 20 silent frames: voice to voice is that pause, 0.4 s.
    assert turn.voice_to_voice_s == pytest.approx(20 * FRAME_S, abs=ONE_STEP)
    assert turn.first_reply_audio_at is not None and turn.speech_end_at is not None
    assert turn.first_reply_audio_at > turn.speech_end_at
    assert len(turn.reply_audio) == 4000
    assert turn.marks_echoed == ["reply-1"]
    assert result.events_received == {"media": 50, "mark": 2}
    assert result.events_sent["mark"] == 2 and result.events_sent["stop"] == 1
    assert {"call.answered", "greeting", "caller.says", "call.ended"} <= set(events)
    json.dumps(result.to_dict())


async def test_barge_in_gets_a_clear_and_pending_marks_come_back_at_once(
    server: FakeServer,
) -> None:
    server.state.reply_lengths_s = [2.0, 0.3]
    result = await place_call(
        server.base_url,
        [
            CallerTurn(audio_pcm16_8k=utterance(), text="tell me a story", wait_for_reply=False),
            CallerTurn(audio_pcm16_8k=utterance(), text="stop", barge_in_after_s=0.3),
        ],
        reply_silence_s=0.25,
        timeout_s=5,
        **server.virtual_time(),
    )
    state = server.state
    assert result.violations == []
    assert len(state.clears_sent) == 1
    # The 2 s reply was cut short: its mark came back right after the clear.
    echo = state.mark_echoes["reply-1"]
    assert 0 < echo - state.clears_sent[0] < ONE_STEP
    assert echo - state.marks_sent["reply-1"] < 1.5

    first, interruption = result.turns
    assert first.voice_to_voice_s is not None and first.voice_to_voice_s > 0
    assert interruption.barge_in and interruption.clear_at is not None
    # The fake clears on the third voiced frame: two 20 ms steps after the first.
    assert interruption.barge_in_stop_s == pytest.approx(2 * FRAME_S, abs=ONE_STEP)
    assert interruption.voice_to_voice_s is not None and interruption.voice_to_voice_s > 0
    assert interruption.marks_echoed == ["reply-1", "reply-2"]


async def test_server_hangup_ends_the_script(server: FakeServer) -> None:
    server.state.hang_up_after_greeting = True
    result = await place_call(
        server.base_url,
        [CallerTurn(audio_pcm16_8k=utterance(), text="anyone there?")],
        realtime=False,
        reply_silence_s=0.5,
        timeout_s=5,
    )
    assert result.ended_by == "server" and result.close_code == 1000
    assert result.turns == [] and not result.greeting_timed_out
    assert server.state.events("stop") == []


async def test_fast_mode_sends_speech_unpaced(server: FakeServer) -> None:
    result = await place_call(
        server.base_url,
        [CallerTurn(audio_pcm16_8k=utterance(), text="hi", dtmf="12")],
        realtime=False,
        reply_silence_s=0.2,
        timeout_s=5,
        **server.virtual_time(),
    )
    state = server.state
    assert result.violations == []
    assert [m["dtmf"] for m in state.events("dtmf")] == [
        {"track": "inbound_track", "digit": "1"},
        {"track": "inbound_track", "digit": "2"},
    ]
    loud = [
        t
        for t, m in state.received
        if m.get("event") == "media" and rms(base64.b64decode(m["media"]["payload"])) > 500
    ]
    # 0.36 s of speech sent in a burst, within one 20 ms step (paced: 17 steps apart).
    assert len(loud) == 18 and loud[-1] - loud[0] < ONE_STEP
    # Audio counts as played on arrival, so marks come straight back (paced: after 0.52 s).
    assert state.mark_echoes["greeting"] - state.marks_sent["greeting"] < 2 * ONE_STEP
    assert result.turns[0].dtmf_sent == "12"
    assert result.turns[0].voice_to_voice_s is not None


async def test_rejected_call(server: FakeServer) -> None:
    server.state.reject = True
    result = await place_call(server.base_url, [], timeout_s=5)
    assert result.rejected and result.rejected_say == "Sorry, we are closed."
    assert result.stream_sid is None and server.state.received == []


@pytest.mark.parametrize("public_url", [None, "https://voice.example.com/edge"])
async def test_signatures_and_public_stream_host(
    server: FakeServer, public_url: str | None
) -> None:
    state = server.state
    state.auth_token = "s3cret"
    # The server names its public host, which the simulator cannot reach: it keeps the path
    # (less the public URL's prefix, which the proxy would strip).
    state.stream_url = "wss://voice.example.com/voice/stream"
    state.public_url = public_url
    result = await place_call(
        server.base_url,
        [],
        auth_token="s3cret",
        public_url=public_url,
        realtime=False,
        reply_silence_s=0.1,
        timeout_s=5,
    )
    assert state.signatures_valid == [True, True]
    assert (
        result.stream_url == f"wss://voice.example.com{'/edge' if public_url else ''}/voice/stream"
    )
    assert result.greeting_latency_s is not None and result.ended_by == "caller"
    assert state.forwarded == ([("https", "voice.example.com")] if public_url else [])

    with pytest.raises(CallSetupError) as refused:
        await open_stream(server.base_url, auth_token="s3cret", signature="bogus")
    assert refused.value.status_code == 403


async def test_violations_are_recorded_not_raised(server: FakeServer) -> None:
    server.state.misbehave = True
    result = await place_call(server.base_url, [], realtime=False, reply_silence_s=0.1, timeout_s=5)
    assert len(result.violations) == 4, result.violations
    assert any("not JSON" in v for v in result.violations)
    assert any("MZwrong" in v for v in result.violations)
    assert any("base64" in v for v in result.violations)
    assert any("'dance'" in v for v in result.violations)
    assert result.greeting_latency_s is not None


async def test_raw_stream_and_abrupt_hangup(server: FakeServer) -> None:
    raw = await open_stream(server.base_url)
    assert raw.custom_parameters == {"agentId": "demo"}
    mark = await raw.wait_for("mark", 2)
    assert mark is not None and mark["mark"]["name"] == "greeting"
    await raw.send_media(b"\xff" * 160)
    await raw.send_text("{not json")  # what a test of the server's input checks would send
    await raw.close(abrupt=True)
    assert raw.close_code == 1006


async def test_playback_clear_echoes_pending_marks_in_order() -> None:
    echoed: list[str] = []

    async def echo(name: str) -> None:
        echoed.append(name)

    playback = Playback(echo, realtime=True)
    loud = pcm16_to_mulaw(tone(0.02))
    playback.push_audio(loud, 0.0, True)
    await playback.push_mark("a")
    playback.push_audio(loud * 3, 0.0, True)
    await playback.push_mark("b")
    await playback.tick(0.0)  # plays the first 20 ms: "a" is reached at its end
    assert echoed == []
    await playback.tick(0.02)
    assert echoed == ["a"]
    assert await playback.clear() == ["b"]
    assert echoed == ["a", "b"] and playback.queued_bytes == 0


def test_wav_helpers(tmp_path: Path) -> None:
    mono = np.frombuffer(tone(1.0, rate=16000), dtype="<i2")
    stereo = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    path = tmp_path / "stereo16k.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(stereo)
    pcm = load_wav_8k(path)
    assert abs(len(pcm) // 2 - 8000) <= 8

    out = tmp_path / "agent.wav"
    mulaw_to_wav(out, pcm16_to_mulaw(pcm))
    save_wav(tmp_path / "plain.wav", pcm, 8000)
    assert abs(len(load_wav_8k(out)) - len(pcm)) <= 16
