"""One passage type from the search to the stored citation: the citation JSON keeps its shape."""

from __future__ import annotations

import json
import uuid

from pydantic import TypeAdapter

from app.api.knowledge import SearchResponse
from app.rag.passage import Passage, SearchHit

CHUNK_ID = uuid.UUID("6f1c1c3e-1d7e-4d55-9a52-0c6a7c1b9e01")
DOCUMENT_ID = uuid.UUID("0b7e2d1a-52f4-4c39-8f0e-6d5b8a3c2f10")
PLACE = {
    "chunk_id": CHUNK_ID,
    "document_id": DOCUMENT_ID,
    "document_name": "handbook.md",
    "position": 3,
    "heading": "Returns",
    "text": "Unused parts may be sent back within 30 days.",
}
HIT = SearchHit(
    **PLACE,
    score=0.1,
    text_rank=1,
    text_score=2.5,
    vector_rank=None,
    vector_distance=None,
    token_count=12,
)


def test_the_stored_citation_keeps_its_shape() -> None:
    stored = json.dumps(Passage(**PLACE).citation())
    # Key for key, in order, as conversations stored it before the passage types were merged.
    assert stored == (
        '{"document_id": "0b7e2d1a-52f4-4c39-8f0e-6d5b8a3c2f10", "document_name": "handbook.md", '
        '"chunk_id": "6f1c1c3e-1d7e-4d55-9a52-0c6a7c1b9e01", "position": 3, "heading": "Returns"}'
    )


def test_a_search_hit_is_cited_as_its_passage() -> None:
    assert HIT.citation() == Passage(**PLACE).citation()


def test_the_search_api_answers_a_hit_without_its_token_count() -> None:
    answer = SearchResponse(knowledge_base_id=uuid.uuid4(), items=[HIT]).model_dump(mode="json")
    assert answer["items"] == [
        {
            **{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in PLACE.items()},
            "score": 0.1,
            "text_rank": 1,
            "text_score": 2.5,
            "vector_rank": None,
            "vector_distance": None,
        }
    ]


def test_a_hit_shown_as_a_passage_has_only_the_passages_fields() -> None:
    shown = TypeAdapter(list[Passage]).dump_python([HIT], mode="json")
    assert set(shown[0]) == set(PLACE)
