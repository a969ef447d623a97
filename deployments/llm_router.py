"""LLM router deployment: chooses the tier per turn and streams from the engine that serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ray import serve
from ray.serve.handle import DeploymentHandle

from app.llm.base import LLMEvent, Message, Tier, ToolSpec
from app.llm.router import TieredLLM
from deployments.handles import HandleLLM


@serve.deployment(name="llm_router")
class LLMRouterDeployment:
    """Without GEMINI_API_KEY every tier is the SLM deployment."""

    def __init__(self, slm: DeploymentHandle) -> None:
        self.router = TieredLLM(slm=HandleLLM(slm, name="slm"))

    async def stream(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, tier: Tier = Tier.SLM
    ) -> AsyncIterator[LLMEvent]:
        """Reply events from the tier's engine."""
        async for event in self.router.stream(messages, tools, tier):
            yield event
