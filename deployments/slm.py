"""SLM deployment: the local small model, on llama.cpp (CPU) or vLLM (serve_config.gpu.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ray import serve

from app.engines import SLMBackend, build_slm
from app.llm.base import LLMEvent, Message, Tier, ToolChoice, ToolSpec
from app.settings import Settings


@serve.deployment(name="slm")
class SLMDeployment:
    """Streams replies from the local model, keeping conversations' KV caches warm."""

    async def __init__(self, settings: Settings, backend: SLMBackend = "llama_cpp") -> None:
        self.engine = build_slm(settings, backend)
        await self.engine.prewarm(settings.telephony.velox_system_prompt)

    async def __del__(self) -> None:
        # Serve awaits this when the replica stops (scale-down, redeploy, shutdown).
        await self.engine.aclose()

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Reply events for `messages`."""
        async for event in self.engine.stream(messages, tools, tier, tool_choice, shown):
            yield event

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read a conversation's prompt so far into this replica's KV cache."""
        await self.engine.prefill(messages, shown)
