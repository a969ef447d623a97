"""How an agent uses its knowledge base on calls (kept light: the call loop imports it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class KnowledgeSettings(BaseModel):
    """How the agent uses its knowledge base on calls."""

    # Forbidden in what a client sends; `from_json` drops unknown keys of a stored row instead.
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(default=3, ge=1, le=10, description="passages per turn at most")
    token_budget: int = Field(default=400, ge=50, le=2000, description="their tokens at most")
    auto_context: bool = Field(default=True, description="look up every turn automatically")

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> KnowledgeSettings:
        """From the agent row (its `knowledge` column), ignoring keys this version does not
        know."""
        known = {k: v for k, v in (data or {}).items() if k in cls.model_fields}
        return cls.model_validate(known)
