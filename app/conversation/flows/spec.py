"""A flow's data model: nodes, their transitions and where the builder draws them."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_NODES = 200
MAX_TRANSITIONS = 20
MAX_INSTRUCTIONS = 2_000
ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
DTMF_PATTERN = r"^[0-9*#]$"


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Instructions = Annotated[str, Field(max_length=MAX_INSTRUCTIONS), AfterValidator(_not_blank)]
Condition = Annotated[str, Field(max_length=500), AfterValidator(_not_blank)]
NodeId = Annotated[str, Field(pattern=ID_PATTERN)]
# A reference is checked against the node ids, so a bad one reads "no node 'x'", once.
NodeRef = Annotated[str, Field(min_length=1, max_length=100)]


class _Spec(BaseModel):
    # Strict: the builder sends real JSON types, and "true" or "1" coerced silently would hide
    # a bug in it.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Position(_Spec):
    """Where the builder draws a node; the conversation ignores it."""

    x: float
    y: float


class TransitionSpec(_Spec):
    """A way out of a node: taken by the model when `when` holds, by the caller's key, or as
    soon as the caller answers at this node (`on_reply`, for intake steps)."""

    to: NodeRef
    when: Condition | None = None
    dtmf: Annotated[str, Field(pattern=DTMF_PATTERN)] | None = None
    on_reply: bool = False

    @model_validator(mode="after")
    def _needs_a_trigger(self) -> TransitionSpec:
        if self.when is None and self.dtmf is None and not self.on_reply:
            raise ValueError(
                "needs a 'when' condition (for the model), a 'dtmf' key (for the keypad), "
                "'on_reply': true (whatever the caller answers), or a mix"
            )
        return self


class NodeSpec(_Spec):
    """One step of the conversation."""

    id: NodeId
    name: str | None = Field(default=None, max_length=100)
    instructions: Instructions
    tools: list[str] = Field(default_factory=list)
    transitions: list[TransitionSpec] = Field(default_factory=list, max_length=MAX_TRANSITIONS)
    end: bool = False
    position: Position | None = None

    @property
    def is_end(self) -> bool:
        """Whether the conversation stops here (marked `end`, or nowhere to go)."""
        return self.end or not self.transitions


class FlowSpec(_Spec):
    """A whole flow: its nodes and the one it starts at."""

    start: NodeRef
    nodes: list[NodeSpec] = Field(min_length=1, max_length=MAX_NODES)

    def node(self, node_id: str) -> NodeSpec:
        """The node with this id (KeyError if there is none)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
