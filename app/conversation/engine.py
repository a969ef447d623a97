"""The conversation engine: one agent turn, the same on a phone call and in the playground.

Given what the caller said (and the knowledge-base passages found for it), the engine builds the
prompt (the agent's prompt, the flow step's instructions, the history), routes the turn to a tier,
streams the reply, runs the tools the model calls and feeds their results back, moves the flow on,
and reports everything that happened as events. It owns no audio and no transport: the call
session speaks the text events, the playground returns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from app.conversation.agent import AgentProfile
from app.conversation.flows import TRANSITION_TOOL, FlowState, FlowTransitionError
from app.conversation.grounding import grounded_question
from app.conversation.repeats import RepeatCheck
from app.conversation.routing import (
    RouteDecision,
    TurnFeatures,
    choose_tier,
    fallback_chain,
    plan_turn,
    slm_tool_choice,
    slm_tools,
    slm_tools_after,
    turn_features,
)
from app.llm.base import (
    LLMEvent,
    Message,
    Routed,
    TextDelta,
    Tier,
    ToolCall,
    ToolSpec,
    Usage,
)
from app.llm.plan import ToolOffer
from app.llm.router import RoutingLLM
from app.rag.passage import Passage
from app.tools import end_call, knowledge_search
from app.tools.base import ToolContext, ToolOutcome, tool_outcome
from app.tools.registry import ToolBox, tool_class

logger = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 3
TOOL_HOLDING_PHRASE = "Let me check that for you."
MODEL_HOLDING_PHRASE = "One moment, please."
# Said once if the answer is still not there a while after the holding phrase: a caller who was
# told to wait hears that they are not forgotten, never a long silence.
STILL_WORKING_PHRASE = "Sorry for the wait, I'm still on it."
WAITING_PHRASES = (TOOL_HOLDING_PHRASE, MODEL_HOLDING_PHRASE, STILL_WORKING_PHRASE)
# Tools whose result is not an answer to the caller's question: a step change, and the search
# that finds passages like those found for the turn.
_NOT_ANSWERS = frozenset({TRANSITION_TOOL, knowledge_search.KnowledgeSearch.name})
# Asked again after a reply that only said an earlier one again; appended to the caller's words.
NOT_AGAIN = "(Answer these words; do not repeat anything you said before.)"
# What the agent says when the model repeats itself twice: honest, short, and a way on.
NO_ANSWER = "Sorry, I'm not sure about that. Could you ask me another way?"


@dataclass(slots=True)
class ConversationState:
    """One conversation as the engine sees it; the caller of the engine keeps it between turns."""

    agent: AgentProfile
    history: list[Message] = field(default_factory=list)  # without the system message
    flow: FlowState | None = None
    conversation_id: str | None = None
    call_sid: str | None = None
    caller_number: str | None = None
    channel: Literal["phone", "playground"] = "phone"
    today: date = field(default_factory=date.today)  # bookings need it to write dates
    keypad: bool = False  # the turn being answered is a key press, not words

    @classmethod
    def start(cls, agent: AgentProfile, **ids: Any) -> ConversationState:
        """A new conversation at the flow's start node, if the agent has a flow."""
        flow = FlowState(agent.flow) if agent.flow is not None else None
        return cls(agent=agent, flow=flow, **ids)

    def press(self, digit: str) -> str:
        """The caller pressed a key: move the flow if the key leads somewhere, and return the
        words the turn answers (the model hears the key press like speech)."""
        if self.flow is not None and (moved := self.flow.on_dtmf(digit)) is not None:
            logger.info("keypad %s moves the flow to %s", digit, moved.to)
        self.keypad = True
        return f"(The caller pressed {digit} on the keypad.)"

    def system_message(self) -> Message:
        """The agent's prompt, today's date, and the current flow step's instructions."""
        # After the agent's prompt, so every conversation shares that prefix's KV cache.
        parts = [self.agent.system_prompt, f"Today is {self.today:%A} {self.today.isoformat()}."]
        if self.flow is not None:
            parts.append(self.flow.instructions())
        return Message("system", "\n\n".join(parts))


@dataclass(frozen=True, slots=True)
class HoldingPhrase:
    """Something to say while a slow tool or model works."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolRan:
    """A tool call and its outcome."""

    outcome: ToolOutcome


@dataclass(frozen=True, slots=True)
class StepChanged:
    """The flow moved to another node."""

    from_node: str
    to_node: str
    via: str


@dataclass(frozen=True, slots=True)
class EndCall:
    """The agent ends the call once its reply has been heard."""

    reason: str


@dataclass(slots=True)
class TurnResult:
    """Everything a turn did, for the transcript and the playground."""

    text: str = ""
    decision: RouteDecision | None = None
    served: list[Routed] = field(default_factory=list)
    usage: list[tuple[Tier, Usage]] = field(default_factory=list)
    tool_runs: list[ToolOutcome] = field(default_factory=list)
    tool_messages: list[Message] = field(default_factory=list)  # calls and results, in order
    sources: list[Passage] = field(default_factory=list)
    node: str | None = None
    first_text_s: float | None = None
    total_s: float = 0.0
    repeats: list[str] = field(default_factory=list)  # earlier sentences a model said again

    @property
    def tier(self) -> Tier | None:
        """The tier that produced the reply."""
        return self.served[-1].tier if self.served else None

    @property
    def model(self) -> str | None:
        """The model that produced the reply."""
        if self.usage:
            return self.usage[-1][1].model
        return self.served[-1].engine if self.served else None

    def tokens_by_tier(self) -> dict[str, dict[str, int]]:
        """Prompt and completion tokens, by the tier that spent them."""
        totals: dict[str, dict[str, int]] = {}
        for tier, usage in self.usage:
            counts = totals.setdefault(tier.value, {"prompt": 0, "completion": 0})
            counts["prompt"] += usage.prompt_tokens
            counts["completion"] += usage.completion_tokens
        return totals

    def cloud_tokens(self) -> int:
        """Tokens spent on the cloud tiers (flash, pro), what a playground budget counts."""
        return sum(
            u.prompt_tokens + u.completion_tokens for tier, u in self.usage if tier != Tier.SLM
        )

    def routing_record(self) -> dict[str, Any]:
        """Why this turn went where it went (kept on the agent's message)."""
        record: dict[str, Any] = self.decision.record() if self.decision else {}
        record["served"] = [
            {"tier": r.tier.value, "engine": r.engine, "reason": r.reason} for r in self.served
        ]
        record["tokens"] = self.tokens_by_tier()
        if self.node is not None:
            record["node"] = self.node
        if self.repeats:
            record["repeats_caught"] = self.repeats
        return record


EngineEvent = TextDelta | HoldingPhrase | ToolRan | StepChanged | EndCall | TurnResult


class ConversationEngine:
    """Runs agent turns; shared by every conversation of a replica."""

    def __init__(
        self,
        *,
        llm: RoutingLLM,
        toolbox: ToolBox,
        holding_after_s: float = 1.2,
        still_working_after_s: float = 2.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`holding_after_s` of silence gets a holding phrase; `still_working_after_s` after it
        (about a second of it is the phrase itself), an apology for the wait."""
        self._llm = llm
        self._toolbox = toolbox
        self._served = llm.served_tiers
        self._holding_after_s = holding_after_s
        self._still_working_after_s = still_working_after_s
        self._clock = clock

    async def respond(
        self,
        state: ConversationState,
        text: str,
        sources: list[Passage] | None = None,
        result: TurnResult | None = None,
        finished: asyncio.Event | None = None,
    ) -> AsyncIterator[EngineEvent]:
        """The agent's answer to `text`: its events, ending with one TurnResult.

        The caller's words go into `state.history` only when the caller of this method decides
        what was heard; the tool calls and results of the turn come back in the TurnResult.
        `finished` is set once the caller has finished the turn (a call's reply may start on
        a guess while they pause): a tool that acts waits for it.
        """
        started = self._clock()
        # Filled in as the turn goes, so a caller that hangs up mid-turn still has its routing.
        result = result if result is not None else TurnResult()
        result.sources = list(sources or [])
        features = turn_features(state.history, text, state.today)
        keypad, state.keypad = state.keypad, False
        moved = state.flow.on_reply() if state.flow is not None and not keypad else None
        specs = self._toolbox.specs(state)
        decision = choose_tier(features, state.agent.policy, tools_offered=bool(specs))
        result.decision = decision
        tier = fallback_chain(decision.tier, self._served)[0]  # what serves it
        if moved is None and state.flow is not None and not keypad:
            if tier is Tier.SLM:
                # The small model cannot judge a step's condition (it never calls go_to_step
                # when left to choose, and picks at random when made to): the caller's words
                # decide, as they decide which tools it may use.
                moved = state.flow.by_words(text)
        # The step that answers, known now: a turn cut short still records where it was.
        result.node = state.flow.current if state.flow else None
        if moved is not None:
            yield StepChanged(moved.from_, moved.to, moved.via)
        asked = text  # the caller's words as the model reads them, a reminder added on a repeat
        context = list(result.sources)  # the passages found for them, read beside them
        said_waiting: set[str] = set()  # what this turn said while the caller waited

        for round_no in range(MAX_TOOL_ROUNDS + 1):
            # The last round must speak: tools stay declared (the history holds calls) but
            # cannot be called.
            last_round = round_no == MAX_TOOL_ROUNDS
            specs = self._toolbox.specs(state)
            user = Message("user", grounded_question(asked, context))
            messages = [state.system_message(), *state.history, user, *result.tool_messages]
            for_slm = [] if last_round else self._slm_specs(specs, features, result)
            # The small model's prompt declares the step's tools, plain, on every round; which of
            # them it may call (and with which grounded arguments) is up to the grammar. Its
            # prompt then starts the same turn after turn and round after round, and only the
            # new words are read: offering a different subset each turn re-read everything.
            slm_offer = ToolOffer(
                tuple(for_slm),
                slm_tool_choice(for_slm) if for_slm else "none",
                shown=tuple(specs) if specs else None,
            )
            plan = plan_turn(
                decision,
                state.agent.policy,
                self._served,
                cloud=ToolOffer(tuple(specs), "none" if last_round else "auto"),
                slm=slm_offer,
            )
            stream = self._llm.stream(messages, plan)
            calls: list[ToolCall] = []
            spoken = ""
            allowed = set() if last_round else {t.name for t in specs}
            # Only a reply's opening can be a repeat: once it spoke, its next round goes on.
            check = RepeatCheck.for_turn(state.history, text, active=not result.text)
            try:
                waiting = self._waiting(MODEL_HOLDING_PHRASE, said_waiting)
                async for event in self._with_holding(stream, waiting):
                    if isinstance(event, HoldingPhrase):
                        said_waiting.add(event.text)
                        yield event
                    elif isinstance(event, Routed):
                        result.served.append(event)
                    elif isinstance(event, TextDelta) and event.text:
                        if speak := check.push(event.text):
                            if result.first_text_s is None:
                                result.first_text_s = self._clock() - started
                            spoken += speak
                            yield TextDelta(speak)
                        elif check.repeated:
                            break
                    elif isinstance(event, ToolCall):
                        if event.name in allowed:
                            calls.append(event)
                        else:  # a model must not act through a tool it was not given
                            logger.warning("ignoring a call to %s, not offered", event.name)
                    elif isinstance(event, Usage):
                        served_tier = result.served[-1].tier if result.served else tier
                        result.usage.append((served_tier, event))
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            if rest := check.finish():
                if result.first_text_s is None:
                    result.first_text_s = self._clock() - started
                spoken += rest
                yield TextDelta(rest)
            if check.repeated:
                result.repeats.append(check.said_again or "")
                logger.warning("call %s: the reply said again %r", state.call_sid, check.said_again)
                if len(result.repeats) == 1 and not last_round:
                    asked = f"{text}\n\n{NOT_AGAIN}"
                    continue  # the caller heard nothing of it: ask once more
                result.text += NO_ANSWER
                yield TextDelta(NO_ANSWER)
                break
            result.text += spoken
            if not calls:
                break
            calls = [
                c if c.id else ToolCall(c.name, c.arguments, f"call_{round_no}_{i}")
                for i, c in enumerate(calls)
            ]
            result.tool_messages.append(Message("assistant", spoken, tool_calls=tuple(calls)))
            for call in calls:
                waiting = self._waiting(TOOL_HOLDING_PHRASE, said_waiting)
                async for step in self._run_tool(state, call, result, waiting, finished):
                    if isinstance(step, HoldingPhrase):
                        said_waiting.add(step.text)
                    yield step
            if context and any(run.name not in _NOT_ANSWERS for run in result.tool_runs):
                # A lookup's result answers the turn: passages found for the caller's words,
                # left beside it, were blended into it (an order "shipped to 12 Main Street,
                # Tuesday to Saturday", the delivery policy read into its status). Unread, they
                # are not cited either.
                result.sources = [s for s in result.sources if s not in context]
                context = []
            fallback = next(
                (r.closing_words for r in result.tool_runs[-len(calls) :] if r.closing_words),
                None,
            )
            if fallback:
                # The tool's own words for its failure ("Could you tell me your order
                # number?"), or for what it still needs ("That time is free. What name should
                # I book it under?"), end the turn: they are right, and another model round
                # is not (a small model reading "ask for the name" says it back).
                result.text += fallback
                yield TextDelta(fallback)
                break
            if tier is Tier.SLM and (told := self._told(specs, features, result)):
                # Each lookup's result in its own words: another round of the local model only
                # read them back, a second or more later, often with facts of its own added
                # ("This means your order is on its way to 12 Main Street"). Gemini, serving
                # the turn, puts results in words itself.
                told = f" {told}" if result.text and not result.text[-1].isspace() else told
                result.text += told
                yield TextDelta(told)
                break
        result.node = state.flow.current if state.flow else None
        result.total_s = self._clock() - started
        yield result

    async def prefill(self, state: ConversationState, then: Sequence[Message] = ()) -> None:
        """Have the local model read the conversation so far, and `then` (a greeting being
        played), while the caller is not waiting: their next turn's prompt starts with it, and
        only their words are left to read (a first turn otherwise reads the agent's whole
        prompt and tools, seconds on a CPU)."""
        specs = self._toolbox.specs(state)
        messages = [state.system_message(), *state.history, *then]
        await self._llm.prefill(messages, specs or None)

    def _slm_specs(
        self, specs: list[ToolSpec], features: TurnFeatures, result: TurnResult
    ) -> list[ToolSpec]:
        # After a tool result the small model only has to say it, unless the caller asked for
        # something else too; offering tools again invites it to call the same tool in a loop
        # (a step change is different: the new step's tools are what it needs next). Passages
        # found automatically make its own search redundant.
        ran = {run.name for run in result.tool_runs if run.name != TRANSITION_TOOL}
        if ran:
            return slm_tools_after(specs, features, ran)
        if result.sources:
            specs = [s for s in specs if s.name != knowledge_search.KnowledgeSearch.name]
        return slm_tools(specs, features)

    def _told(self, specs: list[ToolSpec], features: TurnFeatures, result: TurnResult) -> str:
        """The tools' own words for what this turn's calls found, once nothing is left to call
        ("" when a run has none, or moved the flow or searched the knowledge base)."""
        runs = result.tool_runs
        if not runs or any(r.told is None or r.name in _NOT_ANSWERS for r in runs):
            return ""
        if self._slm_specs(specs, features, result):
            return ""  # the caller asked for something else too: the next round calls it
        return " ".join(r.told for r in runs if r.told)

    async def _run_tool(
        self,
        state: ConversationState,
        call: ToolCall,
        result: TurnResult,
        waiting: list[tuple[float, str]],
        finished: asyncio.Event | None,
    ) -> AsyncIterator[EngineEvent]:
        tool = tool_class(call.name)
        if finished is not None and tool is not None and tool.acts:
            # A booking or a transfer for words the caller then goes on from cannot be undone;
            # a reply abandoned while it waits here never acts.
            await finished.wait()
        if call.name == TRANSITION_TOOL and state.flow is not None:
            started = time.monotonic()
            from_node = state.flow.current
            try:
                transition = state.flow.apply(call)
                outcome = tool_outcome(
                    call, started, ok=True, result={"now_at_step": state.flow.current}
                )
                if transition is not None:
                    yield StepChanged(from_node, transition.to, transition.via)
            except FlowTransitionError as exc:
                outcome = tool_outcome(call, started, ok=False, result={"error": str(exc)})
        else:
            context = ToolContext(
                org_id=state.agent.org_id,
                agent_id=state.agent.id,
                conversation_id=state.conversation_id,
                call_sid=state.call_sid,
                caller_number=state.caller_number,
                url_overrides=state.agent.tool_urls,
            )
            task = asyncio.ensure_future(self._toolbox.run(call, context, state, result))
            try:
                for after_s, phrase in waiting:
                    done, _ = await asyncio.wait({task}, timeout=after_s)
                    if done:
                        break
                    yield HoldingPhrase(phrase)
                outcome = await task
            finally:
                task.cancel()
        result.tool_runs.append(outcome)
        result.tool_messages.append(
            Message(
                "tool",
                json.dumps(outcome.result, default=str),
                name=call.name,
                tool_call_id=call.id,
            )
        )
        yield ToolRan(outcome)
        if call.name == end_call.EndCall.name and outcome.ok:
            yield EndCall(str(call.arguments.get("reason") or "the agent ended the call"))

    def _waiting(self, holding: str, said: set[str]) -> list[tuple[float, str]]:
        """What to say, and after how long, while the caller waits on the next step: the
        `holding` phrase unless one was said this turn, then the apology for the wait, once."""
        phrases: list[tuple[float, str]] = []
        if not said & {MODEL_HOLDING_PHRASE, TOOL_HOLDING_PHRASE}:
            phrases.append((self._holding_after_s, holding))
        if STILL_WORKING_PHRASE not in said:
            phrases.append((self._still_working_after_s, STILL_WORKING_PHRASE))
        return phrases

    async def _with_holding(
        self, stream: AsyncIterator[LLMEvent], waiting: list[tuple[float, str]]
    ) -> AsyncIterator[LLMEvent | HoldingPhrase]:
        """The stream's events, with the `waiting` phrases said, each after its delay from the
        one before, until something speakable (or a tool call) comes."""
        iterator = aiter(stream)
        waiting = list(waiting)
        since = self._clock()
        while True:
            next_event = asyncio.ensure_future(anext(iterator))
            try:
                while waiting:
                    after_s, phrase = waiting[0]
                    timeout = max(0.0, since + after_s - self._clock())
                    done, _ = await asyncio.wait({next_event}, timeout=timeout)
                    if done:
                        break
                    waiting.pop(0)
                    since = self._clock()
                    yield HoldingPhrase(phrase)
                event = await next_event
            except StopAsyncIteration:
                return
            finally:
                next_event.cancel()
            if isinstance(event, TextDelta | ToolCall):
                waiting = []
            yield event
