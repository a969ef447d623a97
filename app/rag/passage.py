"""A knowledge-base passage: what a search finds, a reply draws on and a conversation cites."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, TypedDict

from pydantic import Field


class Citation(TypedDict):
    """A passage as the conversation record keeps it (the text stays in the knowledge base)."""

    document_id: str
    document_name: str
    chunk_id: str
    position: int
    heading: str | None


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage of a document in a knowledge base, and where it came from."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_name: str
    position: int
    heading: str | None
    text: str

    def citation(self) -> Citation:
        """Where the passage came from, ids as strings: stored as JSON with the agent's turn."""
        return Citation(
            document_id=str(self.document_id),
            document_name=self.document_name,
            chunk_id=str(self.chunk_id),
            position=self.position,
            heading=self.heading,
        )


# A subclass rather than a hit holding a passage: the search API answers each hit as one flat
# object, and a hit grounds and is cited wherever a passage is, without being copied into one.
@dataclass(frozen=True, slots=True)
class SearchHit(Passage):
    """A chunk found, its document and position, and each side's score."""

    score: Annotated[float, Field(description="reciprocal-rank fusion of both sides")]
    text_rank: int | None  # 1-based place in the full-text list, None when not there
    text_score: Annotated[
        float | None,
        Field(description="full-text side: BM25 score, the IDF of the question's words it holds"),
    ]
    vector_rank: int | None
    vector_distance: Annotated[float | None, Field(description="cosine distance")]
    # What the passage costs in a prompt (against the agent's token budget): not in the API's
    # answer, which is the search as a client sees it.
    token_count: Annotated[int, Field(exclude=True)]
