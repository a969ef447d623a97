"""How the caller felt, from -1 (angry) to +1 (delighted): VADER over the caller's words.

VADER is a lexicon and rules, tuned on short social text; it needs no model weights and scores
a call in microseconds, which is what a per-call field on the dashboard needs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def caller_sentiment(utterances: list[str]) -> float | None:
    """Mean compound score of the caller's utterances; None if the caller said nothing."""
    scores = [float(_analyzer().polarity_scores(u)["compound"]) for u in utterances if u.strip()]
    if not scores:
        return None
    return round(sum(scores) / len(scores), 3)
