"""Grounding a turn in the knowledge base: the passages found for the caller's words, put in
front of the question so the model answers from them, and kept as the turn's citations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile


@dataclass(frozen=True, slots=True)
class Source:
    """A passage a reply may draw on, and where it came from."""

    document_id: str
    document_name: str
    chunk_id: str
    position: int
    heading: str | None
    text: str

    def citation(self) -> dict[str, Any]:
        """What the conversation record keeps (the passage text stays in the knowledge base)."""
        data = asdict(self)
        data.pop("text")
        return data


# Finds the passages of the agent's knowledge base that bear on what the caller said.
KnowledgeLookup = Callable[["AgentProfile", str], Awaitable[list[Source]]]


def grounded_question(question: str, sources: list[Source]) -> str:
    """The user message with the passages first.

    The passages go in the user turn, not the system prompt: the system prompt stays the same
    on every turn, so the model's cached prefix is reused (see the SLM's KV cache).
    """
    if not sources:
        return question
    facts = "\n".join(f"- {s.heading + ': ' if s.heading else ''}{s.text}" for s in sources)
    return (
        "Facts from our documents (use them if they answer the question; never mention them):\n"
        f"{facts}\n\nThe caller says: {question}"
    )
