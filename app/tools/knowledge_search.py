"""`search_knowledge_base`: the hybrid search over the agent's knowledge base."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import Field

from app.llm.base import ToolCall
from app.tools.arguments import ToolArguments
from app.tools.base import Tool, ToolContext, ToolOutcome, tool_outcome

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.conversation.engine import ConversationState, TurnResult


class SearchArguments(ToolArguments):
    """What to look up."""

    query: str = Field(description="what to look up, in a few words", min_length=1, max_length=200)


class KnowledgeSearch(Tool):
    """Passages found join the turn's sources, so the reply can cite them."""

    name = "search_knowledge_base"
    description = (
        "Search our documents for facts: policies, prices, menus, opening hours. Use for "
        "questions you cannot answer from the conversation. Not for orders or stock."
    )
    arguments = SearchArguments
    # The caller asked for something a tool does: that tool, not a document search.
    yields_to_intents = True

    def configured(self) -> bool:
        return self.deps.lookup is not None

    def usable(self, agent: AgentProfile) -> bool:
        return self.deps.lookup is not None and agent.knowledge_base_id is not None

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        started = time.monotonic()
        query = str(call.arguments.get("query") or "").strip()
        if self.deps.lookup is None or not query:
            return tool_outcome(call, started, ok=False, result={"error": "a query is needed"})
        found = await self.deps.lookup(state.agent, query)
        known = {s.chunk_id for s in result.sources}
        result.sources.extend(s for s in found if s.chunk_id not in known)
        passages = [
            {"document": s.document_name, "heading": s.heading, "text": s.text} for s in found
        ]
        return tool_outcome(call, started, ok=True, result={"passages": passages})
