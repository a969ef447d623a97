"""Voice activity per 20 ms phone frame: Silero (default) or WebRTC VAD gated by energy."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import webrtcvad

from app.audio import pcm16_to_float32


class VoiceActivity(Protocol):
    """Says whether each consecutive 20 ms frame of 8 kHz PCM16 holds speech."""

    def is_speech(self, pcm16_frame: bytes) -> bool:
        """Classify the next frame of the stream."""
        ...


class WebRtcVAD:
    """WebRTC VAD gated by energy.

    WebRTC VAD alone over-triggers on noise and clicks (design.md); requiring some energy as well
    removes the quiet false positives, not loud noise. Microseconds per frame.
    """

    def __init__(self, *, sample_rate: int = 8000, aggressiveness: int = 2, min_rms: float = 300.0):
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate
        self._min_rms = min_rms

    def is_speech(self, pcm16_frame: bytes) -> bool:
        """True when the frame is voiced and loud enough to be a person talking."""
        samples = np.frombuffer(pcm16_frame, dtype="<i2").astype(np.float32)
        if samples.size == 0 or float(np.sqrt(np.mean(samples * samples))) < self._min_rms:
            return False
        return bool(self._vad.is_speech(pcm16_frame, self._rate))


_WINDOW = 512  # Silero v6 at 16 kHz: 32 ms windows with 64 samples of left context
_CONTEXT = 64


@cache
def _silero_session() -> Any:
    """The Silero v6 ONNX model bundled with faster-whisper, shared by every call."""
    import faster_whisper
    import onnxruntime

    path = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # 0.06 ms a window: threads would only cost switches
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SileroVAD:
    """Silero VAD on the call's audio, upsampled to 16 kHz; one instance per call (it keeps
    the model's recurrent state). It ignores noise that WebRTC VAD takes for speech, which
    matters twice on a phone line: for end of turn, and for not clearing the agent's reply.

    Silero decides whether a sound is speech; its probability decays over ~150 ms after the
    voice stops (measured), so a quiet frame (below `min_rms`) ends speech at once: the end of
    the caller's words then starts the turn clock, not the end of Silero's memory of them.

    Its recurrent state is started afresh every `fresh_after_quiet_frames` quiet frames: after
    seconds of near-silence it drifts so far that the next utterance's first second or more is
    not taken for speech (measured on four voices: 0.3-0.8 s of "Do you have almond" missed,
    and with it the words), while a fresh state hears speech as soon as it did at the call's
    start. Quiet frames are never speech anyway, so the reset changes nothing while it is quiet.
    """

    def __init__(
        self,
        *,
        enter: float = 0.5,
        leave: float = 0.35,
        min_rms: float = 150.0,
        fresh_after_quiet_frames: int = 25,
    ):
        self._session = _silero_session()
        self._enter, self._leave = enter, leave
        self._min_rms = min_rms / 32768.0
        self._fresh_after = fresh_after_quiet_frames
        self._quiet_frames = 0
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._previous = 0.0  # last sample of the previous frame, for seamless interpolation
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._speaking = False

    def is_speech(self, pcm16_frame: bytes) -> bool:
        """Speech state after this frame, with hysteresis between `enter` and `leave`."""
        frame = pcm16_to_float32(pcm16_frame)
        loud = frame.size > 0 and float(np.sqrt(np.mean(frame * frame))) >= self._min_rms
        self._quiet_frames = 0 if loud else self._quiet_frames + 1
        if self._quiet_frames and self._quiet_frames % self._fresh_after == 0:
            self._start_afresh()
        self._pending = np.concatenate([self._pending, self._to_16k(frame)])
        while self._pending.size >= _WINDOW:
            window, self._pending = self._pending[:_WINDOW], self._pending[_WINDOW:]
            probability = self._probability(window)
            self._speaking = probability >= (self._leave if self._speaking else self._enter)
        return self._speaking and loud

    def _to_16k(self, frame: np.ndarray) -> np.ndarray:
        # Linear interpolation: a streaming soxr filter would hold samples back and hand them
        # over in bursts (up to ~100 ms late, measured); the band above 4 kHz is empty anyway.
        if frame.size == 0:
            return frame
        shifted = np.concatenate([[self._previous], frame[:-1]])
        out = np.empty(frame.size * 2, dtype=np.float32)
        out[0::2] = (shifted + frame) / 2
        out[1::2] = frame
        self._previous = float(frame[-1])
        return out

    def _probability(self, window: np.ndarray) -> float:
        batch = np.concatenate([self._context, window])[None, :]
        out, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = window[-_CONTEXT:]
        return float(np.asarray(out).reshape(-1)[0])


def make_vad(engine: str, *, aggressiveness: int = 2) -> VoiceActivity:
    """The VAD named by settings (`silero` or `webrtc`)."""
    if engine == "silero":
        return SileroVAD()
    if engine == "webrtc":
        return WebRtcVAD(aggressiveness=aggressiveness)
    raise ValueError(f"unknown VAD engine {engine!r}: use 'silero' or 'webrtc'")
