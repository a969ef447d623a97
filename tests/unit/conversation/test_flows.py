from __future__ import annotations

import copy
from typing import Any

import pytest

from app.conversation.flows import (
    TRANSITION_TOOL,
    FlowError,
    FlowProblem,
    FlowSpec,
    FlowState,
    FlowTransitionError,
    Transition,
    validate_flow,
)
from app.llm.base import ToolCall

TOOLS = {"get_customer_profile", "check_order_status", "book_appointment", "transfer_to_agent"}

INTAKE: dict[str, Any] = {
    "start": "ask_name",
    "nodes": [
        {
            "id": "ask_name",
            "instructions": "Ask for the caller's full name.",
            "transitions": [{"to": "ask_reason", "when": "the caller gave their name"}],
        },
        {
            "id": "ask_reason",
            "instructions": "Ask why they are calling.",
            "transitions": [{"to": "confirm", "when": "the caller said why they call"}],
        },
        {
            "id": "confirm",
            "instructions": "Read the name and reason back and book a callback.",
            "tools": ["book_appointment"],
            "transitions": [{"to": "done", "when": "the caller confirmed"}],
        },
        {"id": "done", "instructions": "Thank the caller and say goodbye.", "end": True},
    ],
}

BRANCHING: dict[str, Any] = {
    "start": "greet",
    "nodes": [
        {
            "id": "greet",
            "name": "Greeting",
            "instructions": "Ask whether the caller wants billing or support.",
            "tools": [],
            "position": {"x": 0, "y": 0},
            "transitions": [
                {"to": "billing", "when": "the caller asks about a bill or a payment", "dtmf": "1"},
                {"to": "support", "when": "the caller has a problem with a product", "dtmf": "2"},
            ],
        },
        {
            "id": "billing",
            "instructions": "Help with the bill.",
            "tools": ["get_customer_profile"],
            "transitions": [{"to": "done", "when": "the question is answered"}],
        },
        {
            "id": "support",
            "instructions": "Help with the product.",
            "tools": ["check_order_status"],
            "transitions": [{"to": "done", "when": "the problem is solved"}],
        },
        {"id": "done", "instructions": "Thank the caller and say goodbye.", "end": True},
    ],
}

MENU: dict[str, Any] = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Say: press 1 for orders, 2 for appointments, 3 for a person.",
            "transitions": [
                {"to": "orders", "dtmf": "1"},
                {"to": "appointments", "dtmf": "2"},
                {"to": "operator", "dtmf": "3", "when": "the caller asks for a person"},
            ],
        },
        {"id": "orders", "instructions": "Look up the order.", "tools": ["check_order_status"]},
        {"id": "appointments", "instructions": "Book a slot.", "tools": ["book_appointment"]},
        {"id": "operator", "instructions": "Transfer the call.", "tools": ["transfer_to_agent"]},
    ],
}


def go(step: Any) -> ToolCall:
    return ToolCall(TRANSITION_TOOL, {"step": step})


def problems(data: dict[str, Any], known_tools: set[str] = TOOLS) -> list[FlowProblem]:
    with pytest.raises(FlowError) as caught:
        validate_flow(data, known_tools=known_tools)
    return caught.value.errors


def problem_at(data: dict[str, Any], path: str) -> str:
    found = [p.message for p in problems(data) if p.path == path]
    assert len(found) == 1, problems(data)
    return found[0]


def changed(base: dict[str, Any], **nodes: dict[str, Any]) -> dict[str, Any]:
    """A copy of a flow with some nodes' fields replaced (keyed by node id)."""
    data = copy.deepcopy(base)
    for node in data["nodes"]:
        node.update(nodes.get(node["id"], {}))
    return data


@pytest.mark.parametrize("flow", [INTAKE, BRANCHING, MENU], ids=["intake", "branching", "menu"])
def test_good_flows_validate(flow: dict[str, Any]) -> None:
    spec = validate_flow(flow, known_tools=TOOLS)
    assert isinstance(spec, FlowSpec)
    assert spec.start == flow["start"]
    assert [n.id for n in spec.nodes] == [n["id"] for n in flow["nodes"]]


def test_linear_intake_is_walked_by_the_model() -> None:
    state = FlowState(validate_flow(INTAKE, known_tools=TOOLS))
    assert state.current == "ask_name" and not state.finished
    moves = [state.apply(go(step)) for step in ("ask_reason", "confirm", "done")]
    assert moves == [
        Transition("ask_name", "ask_reason", "model"),
        Transition("ask_reason", "confirm", "model"),
        Transition("confirm", "done", "model"),
    ]
    assert state.finished
    assert state.transition_tool() is None
    assert state.instructions() == "Thank the caller and say goodbye."
    assert state.snapshot() == {
        "node": "done",
        "path": ["ask_name", "ask_reason", "confirm", "done"],
    }


def test_branching_offers_one_tool_naming_each_branch() -> None:
    state = FlowState(validate_flow(BRANCHING, known_tools=TOOLS))
    tool = state.transition_tool()
    assert tool is not None and tool.name == "go_to_step"
    assert tool.parameters["properties"]["step"]["enum"] == ["billing", "support"]
    assert tool.parameters["required"] == ["step"]
    assert "'billing' when the caller asks about a bill or a payment" in tool.description
    assert "'support' when the caller has a problem with a product" in tool.description

    text = state.instructions()
    assert text.startswith("Ask whether the caller wants billing or support.")
    assert "call go_to_step" in text
    assert "- billing: the caller asks about a bill or a payment" in text

    assert state.apply(go("support")) == Transition("greet", "support", "model")
    assert state.node.id == "support"
    assert state.allowed_tools(TOOLS) == ["check_order_status"]
    assert state.apply(go("done")) is not None and state.finished
    assert state.snapshot() == {"node": "done", "path": ["greet", "support", "done"]}


def test_dtmf_menu_moves_on_keys() -> None:
    flow = validate_flow(MENU, known_tools=TOOLS)
    state = FlowState(flow)
    assert state.on_dtmf("9") is None and state.current == "menu"
    assert state.on_dtmf("2") == Transition("menu", "appointments", "dtmf")
    assert state.finished  # no transitions: an end node without being marked
    assert state.on_dtmf("1") is None  # nothing to press at an end node
    assert state.snapshot() == {"node": "appointments", "path": ["menu", "appointments"]}

    # Only the transition with a `when` is the model's to take.
    state = FlowState(flow)
    tool = state.transition_tool()
    assert tool is not None
    assert tool.parameters["properties"]["step"]["enum"] == ["operator"]
    with pytest.raises(FlowTransitionError, match="'operator'"):
        state.apply(go("orders"))
    assert state.apply(go("operator")) == Transition("menu", "operator", "model")


def test_go_to_step_to_a_non_neighbour_raises_a_message_for_the_model() -> None:
    state = FlowState(validate_flow(BRANCHING, known_tools=TOOLS))
    with pytest.raises(FlowTransitionError) as caught:
        state.apply(go("done"))
    assert "'done'" in str(caught.value) and "'billing', 'support'" in str(caught.value)
    with pytest.raises(FlowTransitionError):
        state.apply(ToolCall(TRANSITION_TOOL, {}))
    with pytest.raises(FlowTransitionError):
        state.apply(go(3))
    assert state.snapshot() == {"node": "greet", "path": ["greet"]}

    state = FlowState(state.flow, "done")
    with pytest.raises(FlowTransitionError, match="no next step"):
        state.apply(go("greet"))


def test_other_tool_calls_are_not_the_flows() -> None:
    state = FlowState(validate_flow(BRANCHING, known_tools=TOOLS))
    assert state.apply(ToolCall("check_order_status", {"order": "1"})) is None
    assert state.current == "greet"


def test_allowed_tools_are_the_nodes_that_the_agent_has() -> None:
    state = FlowState(validate_flow(BRANCHING, known_tools=TOOLS), "billing")
    assert state.allowed_tools(TOOLS) == ["get_customer_profile"]
    assert state.allowed_tools({"check_order_status"}) == []
    state = FlowState(state.flow)
    assert state.allowed_tools(TOOLS) == []  # an empty list means no tools at this step


def test_state_resumes_at_a_node_and_rejects_an_unknown_one() -> None:
    flow = validate_flow(INTAKE, known_tools=TOOLS)
    assert FlowState(flow, "confirm").node.tools == ["book_appointment"]
    with pytest.raises(ValueError, match="nope"):
        FlowState(flow, "nope")


def test_a_self_loop_with_another_way_out_is_fine() -> None:
    data = changed(
        INTAKE,
        confirm={
            "transitions": [
                {"to": "confirm", "when": "the caller corrects a detail"},
                {"to": "done", "when": "the caller confirmed"},
            ]
        },
    )
    state = FlowState(validate_flow(data, known_tools=TOOLS), "confirm")
    assert state.apply(go("confirm")) == Transition("confirm", "confirm", "model")
    assert state.snapshot()["path"] == ["confirm", "confirm"]


# Each problem: its path, and a message naming the node.


def test_missing_start() -> None:
    data = copy.deepcopy(INTAKE)
    del data["start"]
    assert "is required" in problem_at(data, "flow.start")


def test_start_naming_an_unknown_node() -> None:
    message = problem_at({**INTAKE, "start": "welcome"}, "flow.start")
    assert "'welcome'" in message


def test_duplicate_node_ids() -> None:
    data = copy.deepcopy(INTAKE)
    data["nodes"][3]["id"] = "confirm"
    message = problem_at(data, "flow.nodes[3].id")
    assert "'confirm'" in message and "flow.nodes[2]" in message


def test_transition_to_an_unknown_node() -> None:
    data = changed(BRANCHING, support={"transitions": [{"to": "finish", "when": "solved"}]})
    message = problem_at(data, "flow.nodes[2].transitions[0].to")
    assert "node 'support'" in message and "'finish'" in message


def test_unreachable_node() -> None:
    data = copy.deepcopy(BRANCHING)
    data["nodes"].append({"id": "survey", "instructions": "Ask for a rating.", "end": True})
    message = problem_at(data, "flow.nodes[4]")
    assert "node 'survey'" in message and "'greet'" in message


def test_cycle_without_exit() -> None:
    data = changed(
        BRANCHING,
        billing={"transitions": [{"to": "support", "when": "it is a product question"}]},
        support={"transitions": [{"to": "billing", "when": "it is a billing question"}]},
    )
    message = problem_at(data, "flow.nodes[1]")
    assert "billing → support → billing" in message and "no way to an end node" in message
    # `greet` leads only into the loop but is not reported again; `done` is now unreachable.
    assert [p.path for p in problems(data)] == ["flow.nodes[1]", "flow.nodes[3]"]


def test_a_node_that_only_loops_to_itself() -> None:
    data = changed(INTAKE, confirm={"transitions": [{"to": "confirm", "when": "again"}]})
    message = problem_at(data, "flow.nodes[2].transitions")
    assert "node 'confirm'" in message and "itself" in message
    # `done` is now unreachable too; the loop is reported once, not also as a cycle.
    assert [p.path for p in problems(data)] == ["flow.nodes[2].transitions", "flow.nodes[3]"]


def test_duplicate_dtmf_key_in_a_node() -> None:
    data = copy.deepcopy(MENU)
    data["nodes"][0]["transitions"][2]["dtmf"] = "1"
    message = problem_at(data, "flow.nodes[0].transitions[2].dtmf")
    assert "node 'menu'" in message and "'1'" in message and "'orders'" in message


def test_unknown_tool() -> None:
    data = changed(BRANCHING, billing={"tools": ["get_customer_profile", "refund_card"]})
    message = problem_at(data, "flow.nodes[1].tools[1]")
    assert "node 'billing'" in message and "'refund_card'" in message
    assert "get_customer_profile" in message  # says what is available


def test_end_node_with_transitions() -> None:
    data = changed(INTAKE, done={"transitions": [{"to": "ask_name", "when": "start over"}]})
    message = problem_at(data, "flow.nodes[3].transitions")
    assert "node 'done'" in message and "end" in message


def test_transition_needs_a_condition_or_a_key() -> None:
    data = changed(INTAKE, ask_name={"transitions": [{"to": "ask_reason"}]})
    message = problem_at(data, "flow.nodes[0].transitions[0]")
    assert "node 'ask_name'" in message and "'when'" in message and "'dtmf'" in message


@pytest.mark.parametrize(
    ("node", "path", "words"),
    [
        ({"id": "Confirm"}, "flow.nodes[2].id", "lowercase"),
        ({"instructions": "   "}, "flow.nodes[2].instructions", "blank"),
        ({"instructions": "x" * 2001}, "flow.nodes[2].instructions", "2000"),
        ({"end": "yes"}, "flow.nodes[2].end", "true or false"),
        ({"colour": "red"}, "flow.nodes[2].colour", "not a field"),
        ({"position": {"x": 1}}, "flow.nodes[2].position.y", "required"),
        ({"tools": "book_appointment"}, "flow.nodes[2].tools", "list"),
    ],
)
def test_shape_errors_have_paths_and_name_the_node(
    node: dict[str, Any], path: str, words: str
) -> None:
    message = problem_at(changed(INTAKE, confirm=node), path)
    assert words in message
    assert "node 'confirm'" in message or "node 'Confirm'" in message


def test_bad_dtmf_key() -> None:
    data = copy.deepcopy(MENU)
    data["nodes"][0]["transitions"][0]["dtmf"] = "10"
    assert "0-9, * or #" in problem_at(data, "flow.nodes[0].transitions[0].dtmf")


def test_not_a_flow_at_all() -> None:
    assert [p.path for p in problems({"nodes": []})] == ["flow.nodes", "flow.start"]


def test_every_problem_is_reported_at_once() -> None:
    data = copy.deepcopy(BRANCHING)
    greet, billing, support, done = data["nodes"]
    greet["transitions"][1]["dtmf"] = "1"  # duplicate key
    billing["tools"] = ["refund_card"]  # unknown tool
    billing["instructions"] = ""  # shape error
    support["transitions"] = [{"to": "nowhere", "when": "solved"}]  # unknown node
    done["transitions"] = [{"to": "greet", "when": "again"}]  # end node with transitions
    data["nodes"].append({"id": "survey", "instructions": "Rate us."})  # unreachable

    found = problems(data)
    assert [p.path for p in found] == [
        "flow.nodes[0].transitions[1].dtmf",
        "flow.nodes[1].instructions",
        "flow.nodes[1].tools[0]",
        "flow.nodes[2].transitions[0].to",
        "flow.nodes[3].transitions",
        "flow.nodes[4]",
    ]
    error = FlowError(found)
    assert str(error).startswith("invalid flow (6 problems): flow.nodes[0]")


def test_only_one_on_reply_transition_per_node() -> None:
    flow = {
        "start": "a",
        "nodes": [
            {
                "id": "a",
                "instructions": "Ask.",
                "transitions": [{"to": "b", "on_reply": True}, {"to": "c", "on_reply": True}],
            },
            {"id": "b", "instructions": "B."},
            {"id": "c", "instructions": "C."},
        ],
    }
    with pytest.raises(FlowError) as caught:
        validate_flow(flow, known_tools=())
    (problem,) = caught.value.errors
    assert problem.path == "flow.nodes[0].transitions[1].on_reply"
    assert "only one transition can be on_reply" in problem.message
