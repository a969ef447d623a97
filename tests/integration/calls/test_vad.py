"""Silero VAD on real (synthesized) speech and on line noise, at phone quality."""

from __future__ import annotations

import numpy as np
import pytest

from app.audio import resample_pcm16
from app.calls.vad import SileroVAD, WebRtcVAD
from app.speech.piper_tts import PiperTTS
from app.telephony.audio import mulaw_to_pcm16, pcm16_to_mulaw
from harness.simulator.voices import select_voices

pytestmark = pytest.mark.integration
FRAME = 320  # bytes of 20 ms at 8 kHz


async def phone_speech(text: str) -> bytes:
    tts = PiperTTS()
    chunks = [chunk async for chunk in tts.stream(text)]
    pcm = resample_pcm16(b"".join(c.pcm16 for c in chunks), chunks[0].sample_rate, 8000)
    return mulaw_to_pcm16(pcm16_to_mulaw(pcm))


def speech_frames(vad: object, pcm: bytes) -> list[bool]:
    return [vad.is_speech(pcm[i : i + FRAME]) for i in range(0, len(pcm) - FRAME + 1, FRAME)]  # type: ignore[attr-defined]


def noise(rms: float, seconds: float = 2.0) -> bytes:
    samples = np.random.default_rng(7).normal(0, rms, int(8000 * seconds))
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


async def test_silero_hears_speech_between_silences() -> None:
    speech = await phone_speech("Hello, I would like to order a birthday cake for Friday.")
    silence = b"\x00\x00" * 8000
    flags = speech_frames(SileroVAD(), silence + speech + silence)
    lead, body, tail = flags[:50], flags[50:-50], flags[-40:]
    assert not any(lead), "silence before the speech"
    assert sum(body) > 0.6 * len(body), "most of the utterance is speech"
    assert not any(tail), "silence after the speech (hangover included)"


@pytest.mark.parametrize("voice", ["piper-joe", "espeak-us-f3"])
def test_silero_hears_the_next_utterance_after_a_long_silence_as_soon_as_the_first(
    voice: str,
) -> None:
    # Seconds of quiet while the agent spoke drifted Silero's recurrent state: the caller's next
    # question was heard from its second or third word on (measured: 0.4 s, and the whole
    # of "Do you have almond", late).
    caller = select_voices([voice])[0]
    question = caller.speak("Do you have almond croissants in stock today?")
    before = caller.speak("Hi, where is my order A1042?") + b"\x00\x00" * 8000 * 12
    first = speech_frames(SileroVAD(), question)
    later = speech_frames(SileroVAD(), before + question)[-len(first) :]
    assert later.index(True) <= first.index(True) + 3, (first.index(True), later.index(True))


@pytest.mark.parametrize("rms", [300, 1500, 4000])
def test_silero_ignores_line_noise_that_webrtc_takes_for_speech(rms: float) -> None:
    assert not any(speech_frames(SileroVAD(), noise(rms)))
    if rms >= 1500:
        # Why Silero is the default: WebRTC VAD calls loud hiss speech, which would clear the
        # agent's reply on a noisy line.
        assert sum(speech_frames(WebRtcVAD(), noise(rms))) > 10
