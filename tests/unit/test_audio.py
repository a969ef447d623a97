"""Mu-law coding against the stdlib reference, framing, and resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from app.audio import Resampler, pcm16_to_float32, resample_pcm16
from app.telephony.audio import FRAME_BYTES, frames, mulaw_to_pcm16, pcm16_to_mulaw

with warnings.catch_warnings():
    # audioop is deprecated (removed in 3.13) but is still the reference G.711 codec in 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def _tone(rate: int, seconds: float = 1.0, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def _stream(resampler: Resampler, pcm16: bytes, chunk_bytes: int) -> bytes:
    out = [resampler.process(pcm16[i : i + chunk_bytes]) for i in range(0, len(pcm16), chunk_bytes)]
    out.append(resampler.process(b"", last=True))
    return b"".join(out)


def test_encode_matches_audioop_for_every_sample() -> None:
    assert pcm16_to_mulaw(ALL_PCM16) == audioop.lin2ulaw(ALL_PCM16, 2)


def test_decode_matches_audioop_for_every_code() -> None:
    assert mulaw_to_pcm16(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_round_trip_is_stable() -> None:
    decoded = mulaw_to_pcm16(ALL_CODES)
    assert mulaw_to_pcm16(pcm16_to_mulaw(decoded)) == decoded
    assert pcm16_to_mulaw(mulaw_to_pcm16(pcm16_to_mulaw(ALL_PCM16))) == pcm16_to_mulaw(ALL_PCM16)


def test_round_trip_of_speech_like_signal_matches_audioop() -> None:
    pcm = _tone(8000, 0.1)
    ours = mulaw_to_pcm16(pcm16_to_mulaw(pcm))
    assert ours == audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    assert len(ours) == len(pcm)


def test_empty_audio() -> None:
    assert pcm16_to_mulaw(b"") == b""
    assert mulaw_to_pcm16(b"") == b""
    assert frames(b"") == []


def test_frames_pads_the_last_frame_with_mulaw_silence() -> None:
    out = frames(b"\x01" * 400)
    assert [len(f) for f in out] == [FRAME_BYTES] * 3
    assert out[0] == out[1] == b"\x01" * 160
    assert out[2] == b"\x01" * 80 + b"\xff" * 80
    assert mulaw_to_pcm16(b"\xff" * 80) == b"\x00" * 160


def test_frames_leaves_whole_frames_alone() -> None:
    audio = bytes(range(256)) * 5  # 1280 bytes = 8 frames
    out = frames(audio)
    assert len(out) == 8
    assert b"".join(out) == audio


def test_frames_custom_size() -> None:
    assert frames(b"\x00" * 5, frame_bytes=4) == [b"\x00" * 4, b"\x00" + b"\xff" * 3]


@pytest.mark.parametrize(("from_rate", "to_rate"), [(22050, 8000), (8000, 16000)])
def test_streaming_resampler_matches_one_shot(from_rate: int, to_rate: int) -> None:
    pcm = _tone(from_rate)
    one_shot = np.frombuffer(resample_pcm16(pcm, from_rate, to_rate), dtype="<i2")
    # An odd chunk size (333 samples) so chunk edges never line up with the rate ratio.
    streamed = np.frombuffer(_stream(Resampler(from_rate, to_rate), pcm, 2 * 333), dtype="<i2")
    assert abs(len(streamed) - len(one_shot)) <= 2
    assert abs(len(one_shot) - to_rate) <= 2
    n = min(len(streamed), len(one_shot))
    # No seams: the streamed signal follows the one-shot one to within a few LSBs.
    assert np.abs(streamed[:n].astype(np.int32) - one_shot[:n]).max() <= 16


def test_same_rate_is_a_pass_through() -> None:
    pcm = _tone(8000, 0.05)
    assert resample_pcm16(pcm, 8000, 8000) == pcm
    assert Resampler(8000, 8000).process(pcm) == pcm


SILENCE_RATES = [(22050, 8000), (8000, 16000), (16000, 8000)]


def _resampled_silence(from_rate: int, to_rate: int) -> list[np.ndarray]:
    silence = b"\x00\x00" * from_rate
    outs = [
        resample_pcm16(silence, from_rate, to_rate),
        _stream(Resampler(from_rate, to_rate), silence, 320),
    ]
    return [np.frombuffer(out, dtype="<i2") for out in outs]


def test_mulaw_silence_is_exact() -> None:
    assert set(pcm16_to_mulaw(b"\x00\x00" * 160)) == {0xFF}
    assert set(mulaw_to_pcm16(b"\xff" * 160)) == {0}


@pytest.mark.parametrize(("from_rate", "to_rate"), SILENCE_RATES)
def test_resampled_silence_is_exact(from_rate: int, to_rate: int) -> None:
    for samples in _resampled_silence(from_rate, to_rate):
        assert not samples.any()


def test_float32_scaling() -> None:
    pcm = np.array([-32768, 0, 16384, 32767], dtype="<i2").tobytes()
    out = pcm16_to_float32(pcm)
    assert out.dtype == np.float32
    assert out.tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]


def test_phone_frame_encoder_streams_whole_frames_and_pads_the_end() -> None:
    from app.telephony.audio import PhoneFrameEncoder

    pcm = (np.sin(np.arange(22050) / 5) * 8000).astype("<i2").tobytes()  # 1 s at 22.05 kHz
    encoder = PhoneFrameEncoder()
    out: list[bytes] = []
    for i in range(0, len(pcm), 3001 * 2):  # odd chunk sizes, like a TTS stream
        out += encoder.push(pcm[i : i + 3001 * 2], 22050)
    out += encoder.flush()
    assert all(len(f) == 160 for f in out)
    assert abs(len(out) - 50) <= 1, "one second is fifty 20 ms frames"
    assert encoder.flush() == []
