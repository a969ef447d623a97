"""The call benchmark's caller voices: real Piper and espeak-ng audio, as phones carry it."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from harness.simulator.voices import (
    PAUSE_S,
    RATE,
    VOICES,
    CallerVoice,
    EspeakEngine,
    phrases,
    select_voices,
    telephone_band,
)

LINE = "Hi, can I order a birthday cake for Friday?"


@pytest.fixture(scope="module")
def spoken() -> dict[str, bytes]:
    return {name: voice.speak(LINE, seed=3) for name, voice in VOICES.items()}


def samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float64)


def energy_below(pcm16: bytes, hz: float) -> float:
    """Share of the audio's energy below `hz`."""
    power = np.abs(np.fft.rfft(samples(pcm16))) ** 2
    freqs = np.fft.rfftfreq(len(pcm16) // 2, 1 / RATE)
    return float(power[freqs < hz].sum() / power.sum())


def test_the_set_spans_both_engines_and_several_espeak_voices():
    engines = [v.engine for v in VOICES.values()]
    espeak = {e.voice for e in engines if isinstance(e, EspeakEngine)}
    assert {"en-us", "en-gb-x-rp", "en-gb-scotland", "en-us+f3"} <= espeak
    assert len(engines) - len(espeak) >= 3  # Piper at several settings


def test_each_voice_speaks_the_line_as_8khz_speech(spoken):
    for name, pcm in spoken.items():
        seconds = len(pcm) / 2 / RATE
        assert len(pcm) % 2 == 0 and 1.0 < seconds < 8.0, (name, seconds)
        frames = samples(pcm)[: int(seconds * 50) * 160].reshape(-1, 160)
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 500
        # Speech for most of the line, not a click or a hiss.
        assert loud.sum() * 0.02 > 0.5 * seconds - 0.5, (name, loud.sum())


def test_a_voice_is_the_same_for_a_seed_and_different_for_another():
    voice = VOICES["piper-joe-slow"]
    first = voice.speak(LINE, seed=11)
    assert voice.speak(LINE, seed=11) == first
    assert voice.speak(LINE, seed=12) != first
    espeak = VOICES["espeak-us-f3"]
    first = espeak.speak(LINE, seed=11)
    # espeak-ng seeds its noise from the clock: a second apart is where that showed.
    time.sleep(1.1)
    assert espeak.speak(LINE, seed=11) == first


def test_distinct_voices_sound_different(spoken):
    for (a, pa), (b, pb) in itertools.combinations(spoken.items(), 2):
        assert pa != pb, (a, b)
    # Not just different noise: the voices speak at different speeds.
    durations = sorted(len(p) / 2 / RATE for p in spoken.values())
    assert durations[-1] - durations[0] > 0.8, durations


def test_the_phone_band_removes_what_is_below_300_hz():
    t = np.arange(RATE * 2) / RATE
    hum = np.sin(2 * np.pi * 150 * t) + np.sin(2 * np.pi * 290 * t)
    voice = np.sin(2 * np.pi * 1000 * t)
    out = telephone_band(0.3 * hum + 0.3 * voice)
    spectrum = np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(0.3 * hum + 0.3 * voice)).max()
    freqs = np.fft.rfftfreq(len(out), 1 / RATE)
    for hz in (150, 290):
        assert spectrum[np.argmin(np.abs(freqs - hz))] < 1e-3, hz  # > 60 dB down
    assert spectrum[np.argmin(np.abs(freqs - 1000))] == pytest.approx(1.0, abs=0.01)
    assert np.abs(telephone_band(voice) - voice).max() < 1e-6  # the band itself passes whole


def test_every_voice_comes_through_the_phone_band(spoken):
    for name, pcm in spoken.items():
        assert energy_below(pcm, 300) < 1e-4, name
        assert energy_below(pcm, RATE / 2) == pytest.approx(1.0)


def test_a_caller_pauses_at_a_comma_and_around_an_um():
    rng = np.random.default_rng(0)
    plain = phrases("Hi, where can I park my car?", rng, hesitate=False)
    assert [p.text for p in plain] == ["Hi,", "where can I park my car?"]
    assert PAUSE_S[0] <= plain[0].pause_s <= PAUSE_S[1] and plain[-1].pause_s == 0
    hesitant = phrases("Where can I park my car?", rng, hesitate=True)
    assert len(hesitant) == 3 and hesitant[1].text == "um,"
    assert all(PAUSE_S[0] <= p.pause_s <= PAUSE_S[1] for p in hesitant[:-1])


def test_the_pause_is_in_the_audio():
    pcm = VOICES["piper-joe"].speak("Hi, where can I park my car?", seed=1)
    frames = samples(pcm)[: len(pcm) // 2 // 80 * 80].reshape(-1, 80)  # 10 ms
    quiet = np.sqrt(np.mean(frames**2, axis=1)) < 100
    inner = quiet[np.argmin(quiet) : len(quiet) - np.argmin(quiet[::-1])]
    longest = max(len(list(g)) for k, g in itertools.groupby(inner) if k)
    assert longest * 0.01 >= PAUSE_S[0] - 0.03, longest


def test_voices_are_chosen_by_name():
    assert [v.name for v in select_voices(["espeak-us", "piper-joe"])] == [
        "espeak-us",
        "piper-joe",
    ]
    assert len(select_voices(None)) == len(VOICES)
    with pytest.raises(ValueError, match="known: piper-joe"):
        select_voices(["nobody"])
    assert isinstance(VOICES["piper-joe"], CallerVoice)
