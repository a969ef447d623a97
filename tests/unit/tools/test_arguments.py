"""The argument checks that run before any HTTP: spoken values normalised, problems named."""

from __future__ import annotations

import pytest

from app.tools.arguments import ToolArgumentError
from app.tools.registry import validate_arguments


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
        # A phone number that is nothing once its punctuation goes is left out, not refused.
        (
            "book_appointment",
            {"name": "Ann", "date": "2030-05-14", "time": "2pm", "phone": "( )"},
            {"name": "Ann", "date": "2030-05-14", "time": "14:00"},
        ),
        ("get_customer_profile", {"phone": "+1 555 0199"}, {"phone": "+15550199"}),
        ("get_customer_profile", {}, {}),
        ("transfer_to_agent", {"reason": "billing question", "department": "billing"}, None),
        (
            "transfer_to_agent",
            {"reason": "bill", "department": " billing "},
            {"reason": "bill", "department": "billing"},
        ),
        ("end_call", {}, {}),
    ],
)
def test_arguments_are_normalised(
    name: str, given: dict[str, object], expected: dict[str, object] | None
) -> None:
    assert validate_arguments(name, given) == (given if expected is None else expected)


def test_arguments_keep_the_order_the_model_gave() -> None:
    given = {"time": "14:30", "name": "Ann", "date": "2030-05-14"}
    assert list(validate_arguments("book_appointment", given)) == ["time", "name", "date"]


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


def test_problems_are_named_together_in_one_message() -> None:
    with pytest.raises(ToolArgumentError) as caught:
        validate_arguments("book_appointment", {"name": "Ann", "date": "2030-02-30", "time": "x"})
    # The calendar check waits until every argument is well formed.
    assert str(caught.value) == "time is not valid (expected the start time, 24-hour HH:MM)"
    with pytest.raises(ToolArgumentError) as caught:
        validate_arguments("transfer_to_agent", {"department": "hr"})
    assert str(caught.value) == (
        "department must be one of sales, support, billing; missing reason"
    )
    with pytest.raises(ToolArgumentError, match="must be a JSON object"):
        validate_arguments("end_call", ["bye"])  # type: ignore[arg-type]
