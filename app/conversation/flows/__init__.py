"""Conversation flows: an agent's call as a graph of steps, validated, and walked at run time.

A flow is JSON stored on the agent (the visual flow builder edits it)::

    {"start": "greet",
     "nodes": [
       {"id": "greet", "instructions": "Ask: billing or support?", "tools": [],
        "transitions": [{"to": "billing", "when": "the caller asks about a bill", "dtmf": "1"},
                        {"to": "support", "when": "the caller has a problem", "dtmf": "2"}]},
       {"id": "billing", "instructions": "...", "tools": ["get_customer_profile"],
        "transitions": [{"to": "done", "when": "the question is answered"}]},
       ...
       {"id": "done", "instructions": "Thank the caller and say goodbye.", "end": true}]}

Each node is one step: its instructions join the system prompt while the call is there, and only
its `tools` are offered (an empty list means no tools at that step). A transition moves on when
the model calls `go_to_step` (its `when` condition is met) or the caller presses its `dtmf` key;
it needs one or both. An end node is one marked `end: true` or one without transitions; a node
marked `end: true` must not have transitions. `name` and `position` are for the builder only.

The package owns the flow's data model (`spec`: `FlowSpec` and its parts), its checks
(`validation`: `validate_flow` reports every problem at once, each with the path of the field at
fault, `flow.nodes[2].transitions[0].to`) and its run time (`runtime`: `FlowState`, the
engine's position in a validated flow, its `go_to_step` tool and keypad moves).
"""

from app.conversation.flows.runtime import (
    TRANSITION_TOOL,
    FlowState,
    FlowTransitionError,
    Transition,
    Via,
)
from app.conversation.flows.spec import (
    DTMF_PATTERN,
    ID_PATTERN,
    MAX_INSTRUCTIONS,
    MAX_NODES,
    MAX_TRANSITIONS,
    FlowSpec,
    NodeSpec,
    Position,
    TransitionSpec,
)
from app.conversation.flows.validation import FlowError, FlowProblem, validate_flow

__all__ = [
    "DTMF_PATTERN",
    "ID_PATTERN",
    "MAX_INSTRUCTIONS",
    "MAX_NODES",
    "MAX_TRANSITIONS",
    "TRANSITION_TOOL",
    "FlowError",
    "FlowProblem",
    "FlowSpec",
    "FlowState",
    "FlowTransitionError",
    "NodeSpec",
    "Position",
    "Transition",
    "TransitionSpec",
    "Via",
    "validate_flow",
]
