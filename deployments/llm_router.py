"""LLM router deployment: serves each turn on its tier, escalating and falling back as needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from app.engines import build_router
from app.llm.base import LLMEvent, Message, Tier, ToolSpec
from app.settings import Settings
from deployments.handles import HandleLLM


@serve.deployment(name="llm_router")
class LLMRouterDeployment:
    """The SLM deployment for the local tier; Gemini Flash and Pro with GEMINI_API_KEY."""

    async def __init__(self, settings: Settings, slm: DeploymentHandle) -> None:
        self.router = build_router(settings, HandleLLM(slm, name="slm"))
        await self.router.prewarm()

    async def __del__(self) -> None:
        # Serve awaits this when the replica stops: closes the cloud tiers' clients.
        await self.router.aclose()

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        **routing: Any,
    ) -> AsyncIterator[LLMEvent]:
        """Reply events from the tier's engine, after a Routed event."""
        async for event in self.router.stream(messages, tools, tier, **routing):
            yield event
