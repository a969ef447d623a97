"""Hybrid search over one knowledge base: Postgres full-text ranking and pgvector nearest
neighbours, each taking its own candidates, fused by reciprocal rank.

Runs in tenant sessions, so `app.db.tenancy` scopes both sides to the organization; the
knowledge base narrows it further. Keyword-only questions (a product code) are found by the
text side, paraphrases by the vector side; reciprocal-rank fusion needs no score calibration
between the two, which is why it is the usual choice.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import any_, case, cast, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.database import Database
from app.db.models import Chunk, Document, KnowledgeTerm
from app.rag.embedder import Embedder
from app.rag.passage import SearchHit

Mode = Literal["hybrid", "text", "vector"]
# Reciprocal-rank fusion: score = sum over lists of weight / (RRF_K + rank). A small constant
# lets the head of each list decide. The text side's weight depends on the question: a code in
# it (VX-4417) makes the exact match decisive; in a plain spoken question, shared everyday words
# ("parts", "months") are a weak signal next to the embedding, so the text side mostly breaks
# ties. Measured on tests/fixtures/kb_corpus.py and bench/rag.py.
RRF_K = 10
TEXT_WEIGHT_CODES = 1.0
TEXT_WEIGHT_PROSE = 0.25
MIN_TEXT_CANDIDATES = 5  # fewer matches than this: ask for one word fewer, then any word
MAX_QUERY_LEXEMES = 8  # the rarest 8; at most C(8, 4) = 70 groups in a minimum-should-match query
MAX_RANKED_ROWS = 1500  # passages the full-text side ranks when the question has rare words
INDEXED_DIMENSIONS = (384, 768)  # dimensions with an HNSW partial index (see app.db.models)


@dataclass(frozen=True, slots=True)
class _Candidate:
    chunk_id: uuid.UUID
    rank: int
    value: float


class HybridSearch:
    """Searches a knowledge base; the embedder must be the one its chunks were embedded with."""

    def __init__(
        self, db: Database, embedder: Embedder, *, candidates: int = 40, ef_search: int = 200
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.candidates = candidates
        self.ef_search = ef_search

    async def search(
        self,
        org_id: uuid.UUID,
        knowledge_base_id: uuid.UUID,
        query: str,
        *,
        k: int = 5,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[SearchHit]:
        """The `k` best chunks for `query` in one of `org_id`'s knowledge bases.

        The two sides run at once on two connections (each in a session scoped to the org),
        so a hybrid search costs about as much as its slower side.
        """
        query = query.strip()
        if not query:
            return []
        async with self.db.tenant(org_id) as text_session, self.db.tenant(org_id) as vector_session:

            async def text_side() -> list[_Candidate]:
                if mode == "vector":
                    return []
                return await self._text(text_session, knowledge_base_id, query)

            async def vector_side() -> list[_Candidate]:
                if mode == "text":
                    return []
                vector = query_vector
                if vector is None:
                    vector = (await self.embedder.embed([query], purpose="query"))[0]
                return await self._vector(vector_session, knowledge_base_id, vector)

            by_text, by_vector = await asyncio.gather(text_side(), vector_side())
            weight = TEXT_WEIGHT_CODES if identifiers(query) else TEXT_WEIGHT_PROSE
            ranked = fuse(by_text, by_vector, k, text_weight=weight)
            return await self._hits(text_session, ranked, by_text, by_vector)

    async def _text(self, session: AsyncSession, kb_id: uuid.UUID, query: str) -> list[_Candidate]:
        terms = await _terms(session, kb_id, query)
        if not terms:
            return []  # no word of the question is in this knowledge base
        codes = identifiers(query)
        if codes:
            # A product or order code in the question must be in the passage: near-twin codes
            # (VX-4417, VX-4471) look alike to an embedding and to an OR query.
            must = func.plainto_tsquery("english", " ".join(codes))
            found = await self._rank(session, kb_id, must, terms)
            if found:
                return found
        # Any of the question's words may match (a spoken question has words no passage
        # contains, and AND would drop the passage for them), but only passages holding one of
        # its rarer words are ranked: an everyday word matches most of a large knowledge base,
        # and ranking every match is what makes full-text search slow. The rarest words whose
        # counts fit the budget choose the passages; every word still counts in the ranking.
        chosen: list[_Term] = []
        rows = 0
        for term in terms:
            if chosen and rows + term.chunks > MAX_RANKED_ROWS:
                break
            chosen.append(term)
            rows += term.chunks
        if rows <= MAX_RANKED_ROWS:
            return await self._rank(session, kb_id, _any_of(chosen), terms)
        # Every word is an everyday one: ask for half of them at least (two, one word fewer at a
        # time), so few passages are ranked.
        lexemes = [t.lexeme for t in terms]
        for required in range((len(lexemes) + 1) // 2, 1, -1) if len(lexemes) >= 3 else ():
            found = await self._rank(session, kb_id, _at_least(lexemes, required), terms)
            if len(found) >= MIN_TEXT_CANDIDATES:
                return found
        return await self._rank(session, kb_id, _any_of(terms), terms)

    async def _rank(
        self, session: AsyncSession, kb_id: uuid.UUID, match: Any, terms: list[_Term]
    ) -> list[_Candidate]:
        # At most MAX_RANKED_ROWS matches are ranked, whatever the question: a phone turn needs
        # its passages in bounded time. Only a question made of everyday words alone reaches
        # the cap, and for those the embedding side decides anyway.
        matched = (
            select(Chunk.id, Chunk.tsv)
            .where(Chunk.knowledge_base_id == kb_id, Chunk.tsv.bool_op("@@")(match))
            .limit(MAX_RANKED_ROWS)
            .subquery()
        )
        # BM25 with each word counted once per passage (passages are short and of like size):
        # the sum of the inverse document frequencies of the question's words it holds. Cover
        # density (how close together they are, normalised by length) breaks ties.
        score = sum(
            (case((matched.c.tsv.bool_op("@@")(_any_of([t])), t.idf), else_=0.0) for t in terms),
            start=literal(0.0),
        )
        closeness = func.ts_rank_cd(matched.c.tsv, _any_of(terms), 1)
        rows = await session.execute(
            select(matched.c.id, score)
            .order_by(score.desc(), closeness.desc(), matched.c.id)
            .limit(self.candidates)
        )
        return [_Candidate(cid, i + 1, float(r)) for i, (cid, r) in enumerate(rows)]

    async def _vector(
        self, session: AsyncSession, kb_id: uuid.UUID, vector: np.ndarray
    ) -> list[_Candidate]:
        dimension = int(vector.shape[0])
        column: Any = Chunk.embedding
        if dimension in INDEXED_DIMENSIONS:
            # The same expression as the partial HNSW index, or the planner cannot use it.
            column = cast(Chunk.embedding, Vector(dimension))
            # Filtered HNSW stops at ef_search candidates; iterative scans keep going until
            # enough rows pass the knowledge-base filter (pgvector >= 0.8).
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {int(self.ef_search)}"))
        distance = column.cosine_distance(vector.astype(np.float32))
        rows = await session.execute(
            select(Chunk.id, distance)
            .where(Chunk.knowledge_base_id == kb_id, Chunk.dimension == dimension)
            .order_by(distance)
            .limit(self.candidates)
        )
        return [_Candidate(cid, i + 1, float(d)) for i, (cid, d) in enumerate(rows)]

    async def _hits(
        self,
        session: AsyncSession,
        ranked: list[tuple[uuid.UUID, float]],
        by_text: list[_Candidate],
        by_vector: list[_Candidate],
    ) -> list[SearchHit]:
        if not ranked:
            return []
        ids = [cid for cid, _ in ranked]
        rows = await session.execute(
            select(Chunk, Document.filename)
            .join(Document, Document.id == Chunk.document_id)
            .where(Chunk.id.in_(ids))
        )
        found = {chunk.id: (chunk, name) for chunk, name in rows}
        text_of = {c.chunk_id: c for c in by_text}
        vector_of = {c.chunk_id: c for c in by_vector}
        hits = []
        for cid, score in ranked:
            if cid not in found:
                continue  # deleted between the two queries
            chunk, name = found[cid]
            t, v = text_of.get(cid), vector_of.get(cid)
            hits.append(
                SearchHit(
                    chunk_id=cid,
                    document_id=chunk.document_id,
                    document_name=name,
                    position=chunk.position,
                    heading=chunk.heading,
                    text=chunk.text,
                    score=round(score, 6),
                    text_rank=t.rank if t else None,
                    text_score=round(t.value, 6) if t else None,
                    vector_rank=v.rank if v else None,
                    vector_distance=round(v.value, 6) if v else None,
                    token_count=chunk.token_count,
                )
            )
        return hits


@dataclass(frozen=True, slots=True)
class _Term:
    lexeme: str
    chunks: int  # passages of the knowledge base that hold it
    idf: float


async def _terms(session: AsyncSession, kb_id: uuid.UUID, query: str) -> list[_Term]:
    """The question's words that this knowledge base holds, rarest first, with BM25's IDF."""
    words = func.tsvector_to_array(func.to_tsvector("english", query))
    passages = (
        select(func.coalesce(func.sum(Document.chunk_count), 0))
        .where(Document.knowledge_base_id == kb_id, Document.status == "ready")
        .scalar_subquery()
    )
    rows = await session.execute(
        select(KnowledgeTerm.lexeme, KnowledgeTerm.chunks, passages)
        .where(
            KnowledgeTerm.knowledge_base_id == kb_id,
            KnowledgeTerm.lexeme == any_(words),
            KnowledgeTerm.chunks > 0,
        )
        .order_by(KnowledgeTerm.chunks, KnowledgeTerm.lexeme)
        .limit(MAX_QUERY_LEXEMES)
    )
    return [
        _Term(lexeme, df, math.log(1 + (max(n, df) - df + 0.5) / (df + 0.5)))
        for lexeme, df, n in rows
    ]


def _any_of(terms: list[_Term]) -> Any:
    return func.to_tsquery("simple", " | ".join(_quoted(t.lexeme) for t in terms))


def _quoted(lexeme: str) -> str:
    return "'" + lexeme.replace("'", "''") + "'"


def _at_least(lexemes: list[str], required: int) -> Any:
    """A tsquery matching passages with `required` of the (already stemmed) lexemes."""
    quoted = [_quoted(w) for w in lexemes]
    groups = itertools.combinations(quoted, min(required, len(quoted)))
    query = " | ".join("(" + " & ".join(group) + ")" for group in groups)
    return func.to_tsquery("simple", query)  # 'simple': the lexemes are stemmed already


_IDENTIFIER = re.compile(r"\b[\w-]*\d[\w-]*\b")


def identifiers(query: str) -> list[str]:
    """Code-like words (letters and digits: SKUs, order numbers), at least three characters."""
    return [m for m in _IDENTIFIER.findall(query) if len(m.strip("-")) >= 3]


def fuse(
    by_text: list[_Candidate],
    by_vector: list[_Candidate],
    k: int,
    *,
    text_weight: float = 1.0,
) -> list[tuple[uuid.UUID, float]]:
    """Weighted reciprocal-rank fusion; best `k` first, ties to the better vector rank."""
    scores: dict[uuid.UUID, float] = {}
    for ranked, weight in ((by_text, text_weight), (by_vector, 1.0)):
        for candidate in ranked:
            scores[candidate.chunk_id] = scores.get(candidate.chunk_id, 0.0) + weight / (
                RRF_K + candidate.rank
            )
    vector_rank = {c.chunk_id: c.rank for c in by_vector}
    text_rank = {c.chunk_id: c.rank for c in by_text}
    worst = len(by_vector) + len(by_text) + 1

    def order(item: tuple[uuid.UUID, float]) -> tuple[float, int, int]:
        cid, score = item
        return (-score, vector_rank.get(cid, worst), text_rank.get(cid, worst))

    return sorted(scores.items(), key=order)[:k]
