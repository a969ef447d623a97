"""The tiered model: warming its engines, and carrying out a turn plan (tiers in order, cloud
fallbacks, the SLM's escalation when unsure) against scripted engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.llm.base import LLMEvent, Message, Routed, TextDelta, Tier, ToolCall, ToolSpec
from app.llm.plan import ToolOffer, TurnPlan
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


# ----------------------------------------------------------------------------- carrying out a plan

ORDER = ToolSpec(
    "check_order_status",
    "Look up an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
STOCK = ToolSpec("check_item_stock", "Check stock.", {"type": "object", "properties": {}})


def plan(
    *chain: Tier, escalate_to: tuple[Tier, ...] | None = None, min_confidence: float = 0.6
) -> TurnPlan:
    cloud, slm = ToolOffer((ORDER, STOCK), "auto"), ToolOffer((ORDER,), "required")
    escalation = TurnPlan(escalate_to, "routed", cloud, slm) if escalate_to else None
    return TurnPlan(chain, "routed", cloud, slm, escalation, min_confidence)


async def served(router: TieredLLM, the_plan: TurnPlan) -> tuple[list[Routed], str]:
    events = [e async for e in router.stream([Message("user", "Where is A1042?")], the_plan)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return [e for e in events if isinstance(e, Routed)], text


async def test_a_cloud_tier_serves_its_round_with_the_cloud_tools() -> None:
    slm, flash = FakeLLM(replies=["small"]), FakeLLM(replies=["It ships Friday."], name="flash")
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: flash})
    routed, text = await served(router, plan(Tier.FLASH, Tier.SLM))
    assert routed == [Routed(Tier.FLASH, "flash", "routed")] and text == "It ships Friday."
    assert flash.offered == [[ORDER, STOCK]] and flash.choices == ["auto"]
    assert slm.seen == []


async def test_a_failing_cloud_tier_hands_the_round_down_with_the_slms_tools() -> None:
    slm = FakeLLM(replies=["Let me check."])
    flash = FakeLLM(fail=RuntimeError("503 from Gemini"), name="flash")
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: flash})
    routed, text = await served(router, plan(Tier.FLASH, Tier.SLM))
    assert [r.tier for r in routed] == [Tier.FLASH, Tier.SLM]
    assert routed[1].reason.startswith("flash failed")
    assert text == "Let me check."
    assert slm.offered == [[ORDER]] and slm.choices == ["required"]


async def test_a_cloud_tier_silent_past_its_first_event_deadline_is_given_up() -> None:
    slm, flash = FakeLLM(replies=["Here."]), FakeLLM(first_token_s=5.0, name="flash")
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: flash}, first_event_timeout_s=0.05)
    routed, text = await served(router, plan(Tier.FLASH, Tier.SLM))
    assert [r.tier for r in routed] == [Tier.FLASH, Tier.SLM] and text == "Here."
    assert flash.cancelled == 1


async def test_a_cloud_tier_that_already_spoke_is_not_replaced_when_it_fails() -> None:
    class Breaking(FakeLLM):
        async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[LLMEvent]:
            yield TextDelta("It ships")
            raise RuntimeError("connection reset")

    router = TieredLLM(slm=FakeLLM(), tiers={Tier.FLASH: Breaking(name="flash")})
    with pytest.raises(RuntimeError, match="connection reset"):
        await served(router, plan(Tier.FLASH, Tier.SLM))


async def test_an_unsure_slm_is_replaced_by_the_escalation_before_a_word_is_heard() -> None:
    slm = FakeLLM(replies=["Goodbye!"], confidence=0.3)
    flash = FakeLLM(replies=["Your order A1042 ships Friday."], name="flash")
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: flash})
    routed, text = await served(router, plan(Tier.SLM, escalate_to=(Tier.FLASH, Tier.SLM)))
    assert [r.tier for r in routed] == [Tier.SLM, Tier.FLASH]
    assert routed[1].reason == "slm unsure (0.30 < 0.60)"
    assert text == "Your order A1042 ships Friday."  # nothing of the SLM's reply got out
    assert flash.offered == [[ORDER, STOCK]]


async def test_a_call_the_slm_has_no_choice_about_is_made_without_asking_it() -> None:
    slm = FakeLLM()
    pinned = ToolSpec(
        ORDER.name,
        ORDER.description,
        {**ORDER.parameters, "properties": {"order_id": {"type": "string", "enum": ["A1042"]}}},
    )
    forced = TurnPlan((Tier.SLM,), "routed", ToolOffer(), ToolOffer((pinned,), "required"))
    events = [e async for e in TieredLLM(slm=slm).stream([Message("user", "A1042?")], forced)]
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall(ORDER.name, {"order_id": "A1042"})
    ]
    assert slm.seen == []
    # Left a choice (of values, of tools, or of calling at all), the model makes it.
    for offer in (
        ToolOffer((ORDER,), "required"),
        ToolOffer((pinned, STOCK), "required"),
        ToolOffer((pinned,), "auto"),
    ):
        assert offer.forced_call() is None


async def test_a_sure_slm_keeps_the_round() -> None:
    slm = FakeLLM(replies=["We open at nine."], confidence=0.9)
    flash = FakeLLM(name="flash")
    router = TieredLLM(slm=slm, tiers={Tier.FLASH: flash})
    routed, text = await served(router, plan(Tier.SLM, escalate_to=(Tier.FLASH, Tier.SLM)))
    assert [r.tier for r in routed] == [Tier.SLM] and text == "We open at nine."
    assert flash.seen == []
