"""The tool specs the model sees, and the argument checks that run before any HTTP."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from app.conversation.tools import (
    HANDOFF,
    HTTP_TOOLS,
    TOOL_NAMES,
    TOOL_SPECS,
    ToolArgumentError,
    ToolContext,
    idempotency_key,
    validate_arguments,
)
from app.settings import Settings

# What Gemini's function declarations and llama.cpp's JSON-schema grammar both accept.
PORTABLE_KEYWORDS = {
    "type",
    "properties",
    "required",
    "description",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
}


def test_every_tool_has_a_spec_under_its_own_name() -> None:
    assert tuple(TOOL_SPECS) == TOOL_NAMES
    assert all(spec.name == name for name, spec in TOOL_SPECS.items())


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_parameters_are_a_valid_portable_json_schema(name: str) -> None:
    spec = TOOL_SPECS[name]
    Draft202012Validator.check_schema(spec.parameters)
    assert spec.parameters["type"] == "object"
    assert set(spec.parameters["required"]) <= set(spec.parameters["properties"])
    for prop in spec.parameters["properties"].values():
        assert set(prop) <= PORTABLE_KEYWORDS
        assert prop["description"]
    # Written for a small model: a few sentences, saying when to use the tool.
    assert 40 < len(spec.description) < 260
    assert "Use " in spec.description


def test_every_http_tool_has_a_settings_prefix() -> None:
    assert set(HTTP_TOOLS) <= set(TOOL_NAMES)
    assert set(HTTP_TOOLS) == {
        "check_order_status",
        "check_item_stock",
        "book_appointment",
        "get_customer_profile",
    }
    for prefix in [*HTTP_TOOLS.values(), HANDOFF]:
        assert f"{prefix}_api_url" in Settings.model_fields
        assert f"{prefix}_api_key" in Settings.model_fields


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("check_order_status", {"order_id": " a 1042 "}, {"order_id": "A1042"}),
        ("check_order_status", {"order_id": "#A1042", "note": "x"}, {"order_id": "A1042"}),
        ("check_item_stock", {"item": " croissants "}, {"item": "croissants"}),
        (
            "book_appointment",
            {"name": "Ann", "date": "2030-05-14", "time": "2:30 pm", "phone": "", "reason": None},
            {"name": "Ann", "date": "2030-05-14", "time": "14:30"},
        ),
        (
            "book_appointment",
            {"name": "Ann", "date": "2030-05-14", "time": "9:00", "phone": "(415) 555-0123"},
            {"name": "Ann", "date": "2030-05-14", "time": "09:00", "phone": "4155550123"},
        ),
        ("get_customer_profile", {"phone": "+1 555 0199"}, {"phone": "+15550199"}),
        ("get_customer_profile", {}, {}),
        ("transfer_to_agent", {"reason": "billing question", "department": "billing"}, None),
        ("end_call", {}, {}),
    ],
)
def test_arguments_are_normalised(
    name: str, given: dict[str, object], expected: dict[str, object] | None
) -> None:
    assert validate_arguments(name, given) == (given if expected is None else expected)


@pytest.mark.parametrize(
    ("name", "given", "problem"),
    [
        ("check_order_status", {}, "missing order_id"),
        ("check_order_status", {"order_id": "?!"}, "order_id is not valid"),
        ("book_appointment", {"name": "Ann", "time": "14:30"}, "missing date"),
        ("book_appointment", {"name": "Ann", "date": "next friday", "time": "14:30"}, "date"),
        ("book_appointment", {"name": "Ann", "date": "2030-02-30", "time": "14:30"}, "real"),
        ("book_appointment", {"name": "Ann", "date": "2030-02-03", "time": "25:00"}, "time"),
        ("check_item_stock", {"item": 42}, "item is not valid"),
        ("transfer_to_agent", {"reason": "x", "department": "hr"}, "one of sales"),
        ("no_such_tool", {}, "no tool named"),
    ],
)
def test_bad_arguments_say_what_to_ask(name: str, given: dict[str, object], problem: str) -> None:
    with pytest.raises(ToolArgumentError, match=problem):
        validate_arguments(name, given)


def test_idempotency_key_is_the_same_for_the_same_request_in_the_same_call() -> None:
    ctx = ToolContext("org", "agent", "conv", "CA1", "+15550199")
    other_call = ToolContext("org", "agent", "conv2", "CA2", "+15550199")
    args = {"name": "Ann", "date": "2030-05-14", "time": "14:30"}
    key = idempotency_key(ctx, "book_appointment", args)
    assert key == idempotency_key(ctx, "book_appointment", dict(reversed(args.items())))
    assert key != idempotency_key(ctx, "book_appointment", {**args, "time": "15:00"})
    assert key != idempotency_key(other_call, "book_appointment", args)
    anonymous = ToolContext("org", "agent", None, None, None)
    assert idempotency_key(anonymous, "x", args) != idempotency_key(anonymous, "x", args)
