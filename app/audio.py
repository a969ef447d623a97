"""16-bit mono PCM, as every engine and the phone exchange it: float conversion and resampling
(soxr) between the phone's 8 kHz and each model's rate."""

from __future__ import annotations

import numpy as np
import soxr


def resample_pcm16(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample 16-bit mono PCM (soxr, high quality) from one rate to another."""
    if from_rate == to_rate or not pcm16:
        return pcm16
    out = soxr.resample(pcm16_to_float32(pcm16), from_rate, to_rate, quality="HQ")
    return float32_to_pcm16(out)


def pcm16_to_float32(pcm16: bytes) -> np.ndarray:
    """16-bit PCM as float32 samples in [-1, 1), the form speech models take."""
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0


def float32_to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1) as 16-bit little-endian PCM, clipped."""
    # soxr's int16 path dithers digital silence into ±1 LSB noise; float keeps zeros exact.
    scaled = np.clip(np.rint(samples * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


class Resampler:
    """Streaming resampler for one audio stream: chunks in, chunks out, no seams between them."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, pcm16: bytes, *, last: bool = False) -> bytes:
        """Resample the next chunk; `last=True` flushes what the filter still holds."""
        if self._stream is None:
            return pcm16
        out = self._stream.resample_chunk(pcm16_to_float32(pcm16), last=last)
        return float32_to_pcm16(out)
