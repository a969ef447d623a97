"""The turn plan: how the tiered model serves one model round, as the routing policy decided it.

The policy (app.conversation.routing) decides once per turn which tiers try, in what order,
with which tools, and where an unsure small model hands over; the tiered model only carries it
out. Frozen and typed, so the decision reads the same in a log, a test and the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.llm.base import Tier, ToolCall, ToolChoice, ToolSpec


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """The tools a model may call in a round, and whether it must call one."""

    tools: tuple[ToolSpec, ...] = ()
    choice: ToolChoice = "auto"
    # Declared in the prompt instead of `tools` (a superset), so it reads the same every turn.
    shown: tuple[ToolSpec, ...] | None = None

    @property
    def specs(self) -> list[ToolSpec] | None:
        """The tools as engines take them (None: no tools at all)."""
        return list(self.tools) or None

    @property
    def shown_specs(self) -> list[ToolSpec] | None:
        """The declared tools as engines take them (None: `specs`)."""
        return list(self.shown) if self.shown is not None else None

    def forced_call(self) -> ToolCall | None:
        """The one call this offer leaves no choice about: a call is required, of one tool,
        whose every argument is pinned to a single value (None otherwise)."""
        if self.choice != "required" or len(self.tools) != 1:
            return None
        tool = self.tools[0]
        parameters = tool.parameters or {}
        required = set(parameters.get("required", ()))
        arguments: dict[str, Any] = {}
        for name, schema in parameters.get("properties", {}).items():
            values = [schema["const"]] if "const" in schema else schema.get("enum", [])
            if name not in required or len(values) != 1:
                return None  # the model may leave it out, or pick among values
            arguments[name] = values[0]
        return ToolCall(tool.name, arguments)


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """Which tiers serve a round, in order, and what each kind of model is offered."""

    chain: tuple[Tier, ...]  # tried in order until one produces output; ends with the SLM
    reason: str  # why the first of them: "routed", or "no pro engine configured"
    cloud: ToolOffer  # what Gemini Flash and Pro see
    slm: ToolOffer  # what the small model sees: fewer tools, only those the turn grounds
    escalation: TurnPlan | None = None  # an SLM reply below `min_confidence` goes here instead
    min_confidence: float = 0.0

    @property
    def tier(self) -> Tier:
        """The tier that serves the round unless it fails."""
        return self.chain[0]
