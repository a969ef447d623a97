"""`validate_flow`: a flow's shape and graph checked, every problem reported with its path."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.conversation.flows.spec import FlowSpec, NodeSpec, Position, TransitionSpec


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One thing wrong with a flow: where (`flow.nodes[2].transitions[0].to`) and why."""

    path: str
    message: str


class FlowError(ValueError):
    """A flow that cannot be used, with every problem found in it."""

    def __init__(self, errors: list[FlowProblem]) -> None:
        """Keep the problems; the message lists them all, for logs."""
        self.errors = errors
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        listed = "; ".join(f"{p.path}: {p.message}" for p in errors)
        super().__init__(f"invalid flow ({count}): {listed}")


def validate_flow(data: dict[str, Any], *, known_tools: Collection[str]) -> FlowSpec:
    """Check a flow's shape and its graph; raise FlowError listing every problem.

    `known_tools` are the tool names a node may list (the agent's tools, or every registered
    one). The graph checks run even when the shape is wrong, on the parts that can be read, so
    a builder shows all the problems in one round.
    """
    problems: list[_Problem] = []
    spec: FlowSpec | None = None
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        problems += [_shape_problem(err, data) for err in exc.errors(include_url=False)]
    problems += _graph_problems(_read_graph(data), known_tools)
    if problems or spec is None:
        unique = {(p.loc, p.message): p for p in problems}.values()
        ordered = sorted(unique, key=lambda p: _sort_key(p.loc))
        raise FlowError([FlowProblem("flow" + _path(p.loc), p.message) for p in ordered])
    return spec


# Validation internals: problems are kept with their location as a tuple until the end, so they
# sort by node index (nodes[10] after nodes[9]) and group by node.

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc
    message: str


@dataclass(slots=True)
class _RawTransition:
    index: int
    to: str | None
    dtmf: str | None
    on_reply: bool = False


@dataclass(slots=True)
class _RawNode:
    """What the graph checks read of a node, from data that may not fit the schema."""

    index: int
    id: str | None
    marked_end: bool
    transitions: list[_RawTransition] = field(default_factory=list)
    tools: list[tuple[int, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"node '{self.id}'" if self.id else f"nodes[{self.index}]"

    @property
    def is_end(self) -> bool:
        return self.marked_end or not self.transitions


@dataclass(slots=True)
class _RawFlow:
    start: str | None
    nodes: list[_RawNode]


def _read_graph(data: Any) -> _RawFlow:
    if not isinstance(data, Mapping):
        return _RawFlow(None, [])
    start = data.get("start")
    raw_nodes = data.get("nodes")
    nodes: list[_RawNode] = []
    for index, raw in enumerate(raw_nodes if isinstance(raw_nodes, list) else []):
        if not isinstance(raw, Mapping):
            continue
        node_id = raw.get("id")
        node = _RawNode(
            index, node_id if isinstance(node_id, str) else None, raw.get("end") is True
        )
        raw_transitions = raw.get("transitions")
        for t_index, t in enumerate(raw_transitions if isinstance(raw_transitions, list) else []):
            if isinstance(t, Mapping):
                to, dtmf = t.get("to"), t.get("dtmf")
                node.transitions.append(
                    _RawTransition(
                        t_index,
                        to if isinstance(to, str) else None,
                        dtmf if isinstance(dtmf, str) else None,
                        t.get("on_reply") is True,
                    )
                )
        raw_tools = raw.get("tools")
        for tool_index, tool in enumerate(raw_tools if isinstance(raw_tools, list) else []):
            if isinstance(tool, str):
                node.tools.append((tool_index, tool))
        nodes.append(node)
    return _RawFlow(start if isinstance(start, str) else None, nodes)


def _graph_problems(flow: _RawFlow, known_tools: Collection[str]) -> list[_Problem]:
    problems: list[_Problem] = []
    first_index: dict[str, int] = {}
    for node in flow.nodes:
        if node.id is None:
            continue
        if node.id in first_index:
            problems.append(
                _Problem(
                    ("nodes", node.index, "id"),
                    f"node id '{node.id}' is already used by flow.nodes[{first_index[node.id]}]; "
                    "node ids must be unique",
                )
            )
        else:
            first_index[node.id] = node.index

    if flow.start is not None and flow.start not in first_index:
        problems.append(_Problem(("start",), f"the start node '{flow.start}' is not in the flow"))

    for node in flow.nodes:
        problems += _node_problems(node, first_index, known_tools)

    # Edges by id; duplicate ids pool their transitions, so one mistake yields one problem.
    edges: dict[str, list[str]] = {node_id: [] for node_id in first_index}
    ends: set[str] = set()
    for node in flow.nodes:
        if node.id is None:
            continue
        edges[node.id] += [t.to for t in node.transitions if t.to in first_index]
        if node.is_end:
            ends.add(node.id)

    if flow.start in first_index:
        reached = _reachable(flow.start, edges)
        for node in flow.nodes:
            if node.id is not None and node.id not in reached:
                problems.append(
                    _Problem(
                        ("nodes", node.index),
                        f"{node.label} cannot be reached from the start node '{flow.start}'; "
                        "add a transition to it or remove it",
                    )
                )
    problems += _loop_problems(edges, ends, first_index)
    return problems


def _node_problems(
    node: _RawNode, ids: Mapping[str, int], known_tools: Collection[str]
) -> list[_Problem]:
    problems: list[_Problem] = []
    where: Loc = ("nodes", node.index)
    if node.marked_end and node.transitions:
        problems.append(
            _Problem(
                (*where, "transitions"),
                f"{node.label} is marked end: true but has transitions; remove them, or set "
                "end to false",
            )
        )
    digits: dict[str, _RawTransition] = {}
    for t in node.transitions:
        if t.to is not None and t.to and t.to not in ids:
            problems.append(
                _Problem(
                    (*where, "transitions", t.index, "to"),
                    f"{node.label} has a transition to '{t.to}', but there is no node '{t.to}'",
                )
            )
        if t.dtmf is not None:
            if t.dtmf in digits:
                taken = digits[t.dtmf]
                problems.append(
                    _Problem(
                        (*where, "transitions", t.index, "dtmf"),
                        f"{node.label}: key '{t.dtmf}' already goes to '{taken.to}' "
                        f"(transitions[{taken.index}]); give each transition its own key",
                    )
                )
            else:
                digits[t.dtmf] = t
    on_reply = [t for t in node.transitions if t.on_reply]
    for extra in on_reply[1:]:
        problems.append(
            _Problem(
                (*where, "transitions", extra.index, "on_reply"),
                f"{node.label} already moves on any reply to '{on_reply[0].to}' "
                f"(transitions[{on_reply[0].index}]); only one transition can be on_reply",
            )
        )
    only_self = node.transitions and all(t.to == node.id for t in node.transitions)
    if node.id is not None and only_self and not node.marked_end:
        problems.append(
            _Problem(
                (*where, "transitions"),
                f"{node.label} only transitions to itself, so the conversation can never leave "
                "it; add a transition to another node, or remove it to make this an end node",
            )
        )
    for tool_index, tool in node.tools:
        if tool not in known_tools:
            known = ", ".join(sorted(known_tools)) or "none"
            problems.append(
                _Problem(
                    (*where, "tools", tool_index),
                    f"{node.label} uses the unknown tool '{tool}'; tools available: {known}",
                )
            )
    return problems


def _reachable(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for target in edges[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _loop_problems(
    edges: Mapping[str, Sequence[str]], ends: set[str], index: Mapping[str, int]
) -> list[_Problem]:
    """A loop that, once entered, never reaches an end node: one problem per closed loop.

    Nodes that merely lead into such a loop, or that are stuck because a transition names a
    missing node, are not reported again: fixing the loop or the name fixes them.
    """
    reach = {node_id: _reachable(node_id, edges) for node_id in edges}
    stuck = {node_id for node_id, seen in reach.items() if not seen & ends}
    problems: list[_Problem] = []
    reported: set[str] = set()
    for node_id in sorted(stuck, key=index.__getitem__):
        if node_id in reported:
            continue
        component = {other for other in reach[node_id] if node_id in reach[other]}
        # `reach` holds each node itself, so a lone node is a loop only with an edge to itself.
        cyclic = any(node_id in edges[other] for other in component)
        closed = all(target in component for member in component for target in edges[member])
        if not (cyclic and closed):
            continue
        reported |= component
        if component == {node_id}:
            continue  # a node that only transitions to itself: _node_problems says so
        members = sorted(component, key=index.__getitem__)
        cycle = _shortest_cycle(members[0], edges, component)
        chain = " → ".join(cycle)
        if len(component) == len(cycle) - 1:
            message = f"nodes {chain} loop with no way to an end node"
        else:
            message = (
                f"nodes {', '.join(members)} loop with no way to an end node (for example {chain})"
            )
        problems.append(
            _Problem(
                ("nodes", index[members[0]]),
                f"{message}; give one of them a transition that leads to an end node",
            )
        )
    return problems


def _shortest_cycle(start: str, edges: Mapping[str, Sequence[str]], within: set[str]) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for target in edges[current]:
            if target == start:
                path = [current]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target in within and target not in came_from:
                came_from[target] = current
                queue.append(target)
    return [start, start]


# Pydantic's errors, reworded for a person editing the flow.

_FIELDS: dict[str, tuple[str, ...]] = {
    "flow": tuple(FlowSpec.model_fields),
    "node": tuple(NodeSpec.model_fields),
    "transition": tuple(TransitionSpec.model_fields),
    "position": tuple(Position.model_fields),
}

_PHRASES = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "float_type": "must be a number",
    "string_too_short": "must not be empty",
}


def _shape_problem(err: ErrorDetails, data: Any) -> _Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    name = next((part for part in reversed(loc) if isinstance(part, str)), "flow")
    ctx = err.get("ctx", {})
    if kind == "missing" and loc == ("start",):
        phrase = "is required: name the node the conversation starts at"
    elif kind == "missing":
        phrase = "is required"
    elif kind == "extra_forbidden":
        allowed = ", ".join(_FIELDS[_owner(loc[:-1])])
        phrase = f"is not a field here; the fields are: {allowed}"
    elif kind == "string_pattern_mismatch" and name == "dtmf":
        phrase = "must be one key: 0-9, * or #"
    elif kind == "string_pattern_mismatch":
        phrase = (
            "must start with a lowercase letter and hold only lowercase letters, digits and _ "
            "(40 characters at most)"
        )
    elif kind == "string_too_long":
        phrase = f"is too long: {ctx.get('max_length')} characters at most"
    elif kind == "too_short" and loc == ("nodes",):
        phrase = "must hold at least one node"
    elif kind == "too_long":
        phrase = f"has too many items: {ctx.get('max_length')} at most"
    elif kind == "value_error":
        phrase = str(ctx.get("error", err["msg"]))
    else:
        phrase = _PHRASES.get(kind, err["msg"])

    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        label = _label_of(data, loc[1])
        rest = _path(loc[2:]).lstrip(".")
        return _Problem(loc, f"{label}: {rest} {phrase}" if rest else f"{label} {phrase}")
    return _Problem(loc, f"{_path(loc).lstrip('.') or 'the flow'} {phrase}")


def _owner(loc: Loc) -> str:
    if loc[-1:] == ("position",):
        return "position"
    if len(loc) >= 2 and loc[-2] == "transitions":
        return "transition"
    if len(loc) >= 2 and loc[-2] == "nodes":
        return "node"
    return "flow"


def _label_of(data: Any, index: int) -> str:
    nodes = data.get("nodes") if isinstance(data, Mapping) else None
    node = nodes[index] if isinstance(nodes, list) and index < len(nodes) else None
    node_id = node.get("id") if isinstance(node, Mapping) else None
    return f"node '{node_id}'" if isinstance(node_id, str) and node_id else f"nodes[{index}]"


def _path(loc: Iterable[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _sort_key(loc: Loc) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in loc)
