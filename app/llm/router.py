"""The LLM router: picks the tier for a turn and falls back when a tier fails."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

from app.llm.base import LanguageModel, LLMEvent, Message, Tier, ToolSpec

logger = logging.getLogger(__name__)


class TieredLLM:
    """A LanguageModel that serves each tier with its own engine, the local SLM by default.

    Without cloud keys every tier maps to the local model (and /health says so); a tier whose
    engine fails before its first token falls back to the SLM.
    """

    def __init__(self, *, slm: LanguageModel, tiers: Mapping[Tier, LanguageModel] | None = None):
        self._slm = slm
        self._tiers = dict(tiers or {})
        self.name = slm.name

    def engine_for(self, tier: Tier) -> LanguageModel:
        """The engine that serves `tier`."""
        return self._tiers.get(tier, self._slm)

    async def stream(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, tier: Tier = Tier.SLM
    ) -> AsyncIterator[LLMEvent]:
        """Stream from the tier's engine; fall back to the SLM if it fails before any output."""
        engine = self.engine_for(tier)
        produced = False
        try:
            async for event in engine.stream(messages, tools, tier):
                produced = True
                yield event
        except Exception:
            if produced or engine is self._slm:
                raise
            logger.exception("tier %s (%s) failed; falling back to the SLM", tier, engine.name)
            async for event in self._slm.stream(messages, tools, Tier.SLM):
                yield event
