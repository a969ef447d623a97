"""The phone's audio: G.711 mu-law at 8 kHz in 20 ms frames, to and from 16-bit PCM."""

from __future__ import annotations

import numpy as np

from app.audio import Resampler

TWILIO_SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = TWILIO_SAMPLE_RATE * FRAME_MS // 1000  # one mu-law byte per sample

_BIAS = 0x84


def _build_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> np.ndarray:
    # Indexed by |sample| >> 2 (14 bits); the G.711 segment search of audioop.lin2ulaw, precomputed.
    pcm = np.minimum(np.arange(1 << 13, dtype=np.int32), 8159) + 0x21
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_ends, pcm, side="left")
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((pcm >> (seg + 1)) & 0x0F))
    return code.astype(np.uint8)


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def mulaw_to_pcm16(mulaw: bytes) -> bytes:
    """Decode G.711 mu-law bytes to 16-bit little-endian PCM at the same rate."""
    codes = np.frombuffer(mulaw, dtype=np.uint8)
    return _DECODE[codes].astype("<i2").tobytes()


def pcm16_to_mulaw(pcm16: bytes) -> bytes:
    """Encode 16-bit little-endian PCM as G.711 mu-law (bit-identical to audioop.lin2ulaw)."""
    pcm = np.frombuffer(pcm16, dtype="<i2").astype(np.int32) >> 2
    negative = pcm < 0
    magnitude = np.where(negative, -pcm, pcm)
    code = _ENCODE[np.minimum(magnitude, 8191)] ^ np.where(negative, 0x7F, 0xFF)
    return code.astype(np.uint8).tobytes()


def frames(mulaw: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Split mu-law audio into 20 ms frames, padding the last with mu-law silence (0xFF)."""
    out = [mulaw[i : i + frame_bytes] for i in range(0, len(mulaw), frame_bytes)]
    if out and len(out[-1]) < frame_bytes:
        out[-1] = out[-1] + b"\xff" * (frame_bytes - len(out[-1]))
    return out


class PhoneFrameEncoder:
    """Speech at any sample rate in, whole 20 ms mu-law phone frames out, as it streams.

    The resampler is created from the first chunk's rate; samples that do not fill a frame wait
    for the next chunk, and `flush()` pads the last frame with silence.
    """

    def __init__(self) -> None:
        self._resampler: Resampler | None = None
        self._tail = b""

    def push(self, pcm16: bytes, sample_rate: int) -> list[bytes]:
        """Frames completed by this chunk."""
        if self._resampler is None:
            self._resampler = Resampler(sample_rate, TWILIO_SAMPLE_RATE)
        return self._frames(self._resampler.process(pcm16))

    def flush(self) -> list[bytes]:
        """The rest, the last frame padded with mu-law silence."""
        out = self._frames(self._resampler.process(b"", last=True)) if self._resampler else []
        self._resampler = None  # the filter is spent; a later push starts a new one
        tail, self._tail = self._tail, b""
        return out + (frames(pcm16_to_mulaw(tail)) if tail else [])

    def _frames(self, pcm8k: bytes) -> list[bytes]:
        pcm8k = self._tail + pcm8k
        whole = len(pcm8k) - len(pcm8k) % (FRAME_BYTES * 2)
        self._tail = pcm8k[whole:]
        return frames(pcm16_to_mulaw(pcm8k[:whole])) if whole else []
