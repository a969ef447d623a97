"""A flow at run time: the step a call is at, its prompt and tools, and the moves out of it."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from app.conversation.flows.spec import FlowSpec, NodeSpec
from app.llm.base import ToolCall, ToolSpec

logger = logging.getLogger(__name__)

TRANSITION_TOOL = "go_to_step"

Via = Literal["model", "dtmf", "reply", "words"]
# Words that say nothing about which way a conversation goes ("the caller asks about ...").
_FILLER = frozenset(
    "the a an and or of to for in on at is are was be been has have had it its this that "
    "they them their there caller customer asks ask asked says said say wants want about with "
    "when what why how who which some any one our your you i me my we us do does did can could "
    "would should will just now yet".split()
)


class FlowTransitionError(Exception):
    """The model asked for a step it cannot go to; the message is written for the model."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A move the flow made, and what made it."""

    from_: str
    to: str
    via: Via


class FlowState:
    """Where a call stands in its flow, and the prompt, tools and moves of that step."""

    def __init__(self, flow: FlowSpec, current: str | None = None) -> None:
        """Start at `current` (to resume a call) or the flow's start node."""
        self.flow = flow
        self._nodes = {node.id: node for node in flow.nodes}
        self.current = flow.start if current is None else current
        if self.current not in self._nodes:
            raise ValueError(f"the flow has no node {self.current!r}")
        self.path: list[str] = [self.current]

    @property
    def node(self) -> NodeSpec:
        """The current node."""
        return self._nodes[self.current]

    @property
    def finished(self) -> bool:
        """Whether the call is at an end node."""
        return self.node.is_end

    def instructions(self) -> str:
        """What this step adds to the system prompt: its instructions, and when to move on."""
        lines = [self.node.instructions]
        choices = self._model_transitions()
        if choices:
            lines += [
                "",
                f"When one of these becomes true, call {TRANSITION_TOOL} with that step "
                "(do not mention steps to the caller):",
                *(f"- {to}: {when}" for to, when in choices.items()),
            ]
        return "\n".join(lines)

    def allowed_tools(self, agent_tools: Collection[str]) -> list[str]:
        """The node's tools that the agent has, in the node's order; none if the node lists none.

        `go_to_step` is not among them: `transition_tool()` offers it.
        """
        return list(dict.fromkeys(t for t in self.node.tools if t in agent_tools))

    def transition_tool(self) -> ToolSpec | None:
        """The `go_to_step` tool for this node's model transitions; None if it has none."""
        choices = self._model_transitions()
        if not choices:
            return None
        listed = "; ".join(f"'{to}' when {when}" for to, when in choices.items())
        return ToolSpec(
            name=TRANSITION_TOOL,
            description=f"Move the conversation to its next step: {listed}.",
            parameters={
                "type": "object",
                "properties": {
                    "step": {
                        "type": "string",
                        "enum": list(choices),
                        "description": "the step whose condition is met",
                    }
                },
                "required": ["step"],
            },
        )

    def apply(self, call: ToolCall) -> Transition | None:
        """Take a `go_to_step` call (None for any other tool); FlowTransitionError if invalid."""
        if call.name != TRANSITION_TOOL:
            return None
        choices = self._model_transitions()
        step = call.arguments.get("step")
        if not choices:
            raise FlowTransitionError(
                f"there is no next step from '{self.current}'; carry on without {TRANSITION_TOOL}"
            )
        if not isinstance(step, str) or step not in choices:
            allowed = ", ".join(f"'{to}'" for to in choices)
            raise FlowTransitionError(
                f"cannot go to step {step!r} from '{self.current}'; the next step must be one "
                f"of {allowed}"
            )
        return self._move(step, "model")

    def on_reply(self) -> Transition | None:
        """The caller answered at this node: follow its `on_reply` transition, if it has one."""
        for transition in self.node.transitions:
            if transition.on_reply:
                return self._move(transition.to, "reply")
        return None

    def by_words(self, said: str) -> Transition | None:
        """Follow the `when` transition whose condition shares the most words with what the
        caller said (by their first four letters: "open" matches "opening"), if any does.

        For a model too small to judge conditions (the local SLM): a caller who mentions "my
        order" at a menu whose branch reads "the caller asks about an order" has given grounds.
        """
        heard = _stems(said)
        best, overlap = None, 0
        for to, when in self._model_transitions().items():
            shared = len(heard & _stems(when))
            if shared > overlap:
                best, overlap = to, shared
        return self._move(best, "words") if best is not None else None

    def on_dtmf(self, digit: str) -> Transition | None:
        """Follow the transition for a pressed key, if the current node has one."""
        for transition in self.node.transitions:
            if transition.dtmf == digit:
                return self._move(transition.to, "dtmf")
        return None

    def snapshot(self) -> dict[str, Any]:
        """The position for the conversation record: `{"node": id, "path": [visited ids]}`."""
        return {"node": self.current, "path": list(self.path)}

    def _model_transitions(self) -> dict[str, str]:
        # One entry per target; several conditions for one target read as alternatives.
        conditions: dict[str, list[str]] = {}
        for transition in self.node.transitions:
            if transition.when is not None:
                conditions.setdefault(transition.to, []).append(transition.when)
        return {to: " or ".join(whens) for to, whens in conditions.items()}

    def _move(self, to: str, via: Via) -> Transition:
        moved = Transition(from_=self.current, to=to, via=via)
        self.current = to
        self.path.append(to)
        logger.debug("flow moved %s -> %s via %s", moved.from_, moved.to, via)
        return moved


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return {w[:4] for w in words if w not in _FILLER and len(w) > 2}
