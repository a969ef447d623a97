"""The tiered router's own duties: warming its engines before the first turn."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.llm.base import Tier
from app.llm.router import TieredLLM
from tests.fakes import FakeLLM


@dataclass
class WarmingLLM(FakeLLM):
    warmed: list[str | None] = field(default_factory=list)

    async def prewarm(self, system_prompt: str | None = None) -> None:
        self.warmed.append(system_prompt)


@dataclass
class WarmingCloud(FakeLLM):
    warmed: int = 0

    async def prewarm(self) -> None:
        self.warmed += 1


async def test_prewarm_fills_the_slm_cache_and_opens_each_cloud_engine_once() -> None:
    slm, cloud = WarmingLLM(), WarmingCloud()
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: cloud, Tier.PRO: cloud})
    await router.prewarm("You answer the phone for Rosa's Bakery.")
    assert slm.warmed == ["You answer the phone for Rosa's Bakery."]
    assert cloud.warmed == 1  # Flash and Pro share one engine
