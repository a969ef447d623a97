"""How an agent uses its knowledge base on calls (kept light: the call loop imports it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Measured with the shipped MiniLM on a bakery handbook: questions a section answers lie 0.26-0.50
# from it, questions about other things 0.67-0.95; a passage holding the caller's own words
# ("nuts" for the allergens section, 0.70) is given this much more room.
WORDS_IN_COMMON_SLACK = 0.1
# How far behind the best passage another may be (0.33 -> 0.67 for "how far ahead do I order a
# wedding cake": the delivery section is not the answer; a two-part question's parts lie closer).
BEHIND = 0.2


class KnowledgeSettings(BaseModel):
    """How the agent uses its knowledge base on calls."""

    # Forbidden in what a client sends; `from_json` drops unknown keys of a stored row instead.
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(default=3, ge=1, le=10, description="passages per turn at most")
    token_budget: int = Field(default=400, ge=50, le=2000, description="their tokens at most")
    auto_context: bool = Field(default=True, description="look up every turn automatically")
    max_distance: float = Field(
        default=0.65,
        ge=0,
        le=2,
        description="automatic context leaves out passages farther than this from the caller's "
        "words (cosine distance), or a little farther when they share words with them",
    )

    def relevant(
        self, distance: float | None, *, shares_words: bool, nearest: float | None
    ) -> bool:
        """Whether a passage bears on the caller's words enough to be put before the model, given
        the `nearest` passage's distance: the nearest passages of a knowledge base about
        something else, or ones far behind the best, only lead a small model astray (a bakery's
        delivery terms read out for "do you sell kayaks?", or for a wedding cake's notice)."""
        if distance is None:  # found by its words alone
            return shares_words
        limit = self.max_distance if nearest is None else min(self.max_distance, nearest + BEHIND)
        return distance <= limit + (WORDS_IN_COMMON_SLACK if shares_words else 0.0)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> KnowledgeSettings:
        """From the agent row (its `knowledge` column), ignoring keys this version does not
        know."""
        known = {k: v for k, v in (data or {}).items() if k in cls.model_fields}
        return cls.model_validate(known)
