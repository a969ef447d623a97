"""How an agent uses its knowledge base on calls (kept light: the call loop imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnowledgeSettings:
    """Per-agent use of the knowledge base (the agent's `knowledge` column)."""

    top_k: int = 3
    token_budget: int = 400
    auto_context: bool = True

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> KnowledgeSettings:
        """From the agent row, ignoring keys this version does not know."""
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)  # type: ignore[arg-type]
