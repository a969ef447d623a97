"""The local embedder: the int8 model built on this machine against the float32 original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.rag.embedder import MiniLMEmbedder
from app.rag.minilm_model import int8_model, weights_dir

pytestmark = pytest.mark.integration

PASSAGES = [
    "Refunds are issued to the original payment method within five business days.",
    "Our store opens at nine in the morning and closes at six, Monday to Saturday.",
    "The VX-4417 router ships with a two-year warranty covering parts and labour.",
    "To reset your password, open Settings, choose Security and follow the link we email you.",
    "Deliveries to rural addresses can take up to ten days during the holiday season.",
    "We accept Visa, Mastercard and American Express, but not cheques.",
]
QUESTIONS = [
    ("How long until I get my money back?", 0),
    ("When are you open on Saturdays?", 1),
    ("Is the VX-4417 covered if it breaks?", 2),
    ("I forgot my login, what do I do?", 3),
    ("Why is my parcel taking so long to reach the countryside?", 4),
    ("Can I pay with a credit card?", 5),
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def float32_vectors() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights_dir()), device="cpu", local_files_only=True)
    texts = PASSAGES + [q for q, _ in QUESTIONS]
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)


def test_int8_vectors_stay_close_to_the_float32_model(
    embedder: MiniLMEmbedder, float32_vectors: np.ndarray
) -> None:
    texts = PASSAGES + [q for q, _ in QUESTIONS]
    vectors = embedder.embed_sync(texts)
    cosine = (vectors * float32_vectors).sum(axis=1)
    # Per-tensor int8 scales fell to a mean of 0.957 here; per-channel keeps about 0.99.
    assert cosine.mean() >= 0.98 and cosine.min() >= 0.95, cosine
    passages = vectors[: len(PASSAGES)]
    for (question, answer), row in zip(QUESTIONS, vectors[len(PASSAGES) :], strict=True):
        assert int(np.argmax(passages @ row)) == answer, question


def test_parallel_batches_keep_the_input_order(embedder: MiniLMEmbedder) -> None:
    # Texts are embedded on several threads at once; each row must still belong to its text.
    parallel = MiniLMEmbedder(threads=2)
    texts = PASSAGES + [q for q, _ in QUESTIONS]
    together = parallel.embed_sync(texts)
    alone = np.stack([embedder.embed_sync([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert parallel.embed_sync([]).shape == (0, 384)


def test_the_model_is_built_once_and_reused(tmp_path: Path) -> None:
    built = int8_model(tmp_path)
    stamp = built.stat().st_mtime_ns
    assert int8_model(tmp_path) == built and built.stat().st_mtime_ns == stamp
    # Nothing of the build is left beside it.
    assert [p.name for p in tmp_path.iterdir()] == [built.name]
