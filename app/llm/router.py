"""The LLM router: serves a turn on the tier it was routed to, escalates an unsure small model,
and falls back down the tiers when a cloud model fails or is slow to start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Protocol, runtime_checkable

from app.llm.base import (
    Confidence,
    LanguageModel,
    LLMEvent,
    Message,
    Routed,
    Tier,
    ToolSpec,
    Usage,
)
from app.llm.plan import TurnPlan

logger = logging.getLogger(__name__)


@runtime_checkable
class RoutingLLM(Protocol):
    """The LLM router as the conversation engine sees it (TieredLLM, or a test's stand-in)."""

    name: str

    @property
    def served_tiers(self) -> frozenset[Tier]:
        """The tiers with an engine of their own."""
        ...

    def stream(self, messages: list[Message], plan: TurnPlan) -> AsyncIterator[LLMEvent]:
        """Routed first, then the reply's events."""
        ...

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Warm every tier before the first turn."""
        ...

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read a conversation's prompt so far into the local model's cache."""
        ...

    async def aclose(self) -> None:
        """Close every tier's engine."""
        ...


class TieredLLM:
    """The LLM router: serves each tier with its own engine, the local SLM by default.

    Without cloud keys every tier maps to the local model (and /health says so). A cloud tier
    that fails, or sends nothing within `first_event_timeout_s`, hands the turn to the next tier
    down, so a caller waits a bounded time; once a tier has produced output, its errors surface.
    """

    def __init__(
        self,
        *,
        slm: LanguageModel,
        tiers: Mapping[Tier, LanguageModel] | None = None,
        first_event_timeout_s: float = 4.0,
    ):
        self._slm = slm
        self._tiers = dict(tiers or {})
        self._first_event_timeout_s = first_event_timeout_s
        self.name = slm.name

    @property
    def served_tiers(self) -> frozenset[Tier]:
        """The tiers with an engine of their own (the SLM always)."""
        return frozenset({Tier.SLM, *self._tiers})

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Warm what the first turn would wait for: the local SLM's prompt cache (when it runs
        in this process) and the cloud engines' clients."""
        await self._slm.prewarm(system_prompt)
        for engine in self._cloud_engines():
            await engine.prewarm()

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read a conversation's prompt so far into the local model's cache (the cloud tiers
        cache prompts on their side)."""
        await self._slm.prefill(messages, shown)

    async def aclose(self) -> None:
        """Close every tier's engine."""
        await self._slm.aclose()
        for engine in self._cloud_engines():
            await engine.aclose()

    def _cloud_engines(self) -> list[LanguageModel]:
        # Flash and Pro are usually one GeminiLLM: warm and close it once.
        return list({id(e): e for e in self._tiers.values()}.values())

    def engine_for(self, tier: Tier) -> LanguageModel:
        """The engine that serves `tier`."""
        return self._tiers.get(tier, self._slm)

    async def stream(self, messages: list[Message], plan: TurnPlan) -> AsyncIterator[LLMEvent]:
        """Events for the round, each tier's starting with a `Routed`.

        The tiers of `plan.chain` try in order: a cloud tier that fails before its first event
        hands over to the next. Whenever the SLM serves, it sees `plan.slm`'s tools; with an
        escalation, its stream is held back until the model reports its Confidence, and below
        `plan.min_confidence` the round is served by the escalation's plan instead.
        """
        reason = plan.reason
        for position, current in enumerate(plan.chain):
            engine = self.engine_for(current)
            yield Routed(current, engine.name, reason)
            if current is Tier.SLM:
                async for event in self._serve_slm(messages, plan):
                    yield event
                return
            produced = False
            try:
                async for event in self._guarded(engine, messages, plan, current):
                    produced = True
                    yield event
                return
            except Exception as exc:
                if produced or position == len(plan.chain) - 1:
                    raise
                reason = f"{current.value} failed: {_describe(exc)}"
                logger.warning("tier %s (%s) failed, falling back: %r", current, engine.name, exc)

    async def _guarded(
        self, engine: LanguageModel, messages: list[Message], plan: TurnPlan, tier: Tier
    ) -> AsyncIterator[LLMEvent]:
        stream = engine.stream(messages, plan.cloud.specs, tier, plan.cloud.choice)
        iterator = aiter(stream)
        try:
            try:
                first = await asyncio.wait_for(anext(iterator), self._first_event_timeout_s)
            except StopAsyncIteration:
                return
            yield first
            async for event in iterator:
                yield event
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    async def _serve_slm(self, messages: list[Message], plan: TurnPlan) -> AsyncIterator[LLMEvent]:
        if (call := plan.slm.forced_call()) is not None:
            # The grammar would force every token of it, each one a forward pass (~0.7 s for an
            # order lookup on a CPU): nothing is left for the model to decide or to sample.
            yield call
            yield Usage(model=self._slm.name, prompt_tokens=0, completion_tokens=0)
            return
        stream = self._slm.stream(
            messages, plan.slm.specs, Tier.SLM, plan.slm.choice, plan.slm.shown_specs
        )
        if plan.escalation is None:
            try:
                async for event in stream:
                    yield event
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            return
        held: list[LLMEvent] = []
        unsure: Confidence | None = None
        decided = False
        try:
            async for event in stream:
                if decided:
                    yield event
                    continue
                held.append(event)
                if isinstance(event, Confidence):
                    if event.score < plan.min_confidence:
                        unsure = event
                        break
                    decided = True
                    for kept in held:
                        yield kept
            if not decided and unsure is None:  # ended without a confidence: trust it
                for kept in held:
                    yield kept
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        if unsure is None:
            return
        reason = f"slm unsure ({unsure.score:.2f} < {plan.min_confidence:.2f})"
        async for event in self.stream(messages, plan.escalation):
            if isinstance(event, Routed) and event.reason == "routed":
                event = Routed(event.tier, event.engine, reason)
            yield event


def as_router(llm: LanguageModel | RoutingLLM) -> RoutingLLM:
    """`llm` if it already routes, else a router with `llm` serving every tier."""
    if isinstance(llm, RoutingLLM):
        return llm
    return TieredLLM(slm=llm)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return type(exc).__name__
