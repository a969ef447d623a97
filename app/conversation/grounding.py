"""Grounding a turn in the knowledge base: the passages found for the caller's words, put in
front of the question so the model answers from them, and kept as the turn's citations."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from app.rag.passage import Passage

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.rag.service import KnowledgeService


# Finds the passages of the agent's knowledge base that bear on what the caller said.
KnowledgeLookup = Callable[["AgentProfile", str], Awaitable[list[Passage]]]


class AgentKnowledge:
    """Finds passages in an agent's knowledge base: on every turn (automatic context, when the
    agent asks for it) or when the model calls search_knowledge_base."""

    def __init__(self, knowledge: KnowledgeService) -> None:
        self._knowledge = knowledge

    async def context(self, agent: AgentProfile, question: str) -> list[Passage]:
        """Passages for the caller's words, put in front of the question (automatic context)."""
        if not agent.knowledge.auto_context:
            return []
        return await self.search(agent, question)

    async def search(self, agent: AgentProfile, question: str) -> list[Passage]:
        """Passages of the agent's knowledge base for `question`."""
        if agent.org_id is None or agent.knowledge_base_id is None:
            return []
        hits = await self._knowledge.context(
            uuid.UUID(agent.org_id), uuid.UUID(agent.knowledge_base_id), question, agent.knowledge
        )
        # A hit is a passage: it grounds the turn and is cited as one (its scores go unused).
        return list(hits)


def grounded_question(question: str, sources: list[Passage]) -> str:
    """The user message with the passages first.

    The passages go in the user turn, not the system prompt: the system prompt stays the same
    on every turn, so the model's cached prefix is reused (see the SLM's KV cache).
    """
    if not sources:
        return question
    # A section's own heading only: a document's title in front of a fact ("Staff handbook ›
    # Delivery") is read out by a small model. The caller's words come last, unlabelled: a
    # label ("The caller says:") was said back with them.
    facts = "\n".join(f"- {_section(s.heading)}{s.text}" for s in sources)
    return (
        f"(Facts you may use; never mention them or where they come from:\n{facts})\n\n{question}"
    )


def _section(heading: str | None) -> str:
    return f"{heading.rsplit('›', 1)[-1].strip()}: " if heading else ""
