"""The pure parts of hybrid search: code detection, two-of-N queries, weighted fusion."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects import postgresql

from app.rag.search import _at_least, _Candidate, fuse, identifiers


def test_identifiers_are_words_with_digits() -> None:
    assert identifiers("do you stock ZT-8801 or A12?") == ["ZT-8801", "A12"]
    assert identifiers("order 4471, not 12") == ["4471"]
    assert identifiers("what are your hours") == []


def test_at_least_groups_the_lexemes() -> None:
    compiled = _at_least(["burst", "night", "pipe"], 2).compile(dialect=postgresql.dialect())
    config, query = compiled.params.values()
    assert config == "simple"  # the lexemes are stemmed already
    assert query == "('burst' & 'night') | ('burst' & 'pipe') | ('night' & 'pipe')"
    three = _at_least(["a", "b", "c", "d"], 3).compile(dialect=postgresql.dialect())
    assert list(three.params.values())[1].count("|") == 3  # C(4, 3) = 4 groups


def test_fusion_weights_and_ties() -> None:
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    text = [_Candidate(a, 1, 0.5), _Candidate(b, 2, 0.1)]
    vector = [_Candidate(b, 1, 0.2), _Candidate(c, 2, 0.3), _Candidate(a, 3, 0.4)]
    # Equal weights: consensus wins.
    assert [cid for cid, _ in fuse(text, vector, 3)][0] in (a, b)
    # A weak text side only breaks ties: the vector order stands.
    assert [cid for cid, _ in fuse(text, vector, 3, text_weight=0.25)] == [b, a, c]
    # A decisive text side (a code in the question) puts its match first.
    assert fuse([_Candidate(c, 1, 1.0)], vector, 1, text_weight=1.0)[0][0] == c
