"""`book_appointment`: a booking in the calendar once the caller gave a name, a day and a time;
with a day and a time but no name yet, the slot is checked so the agent asks only for the name."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.llm.base import ToolCall
from app.tools.arguments import PHONE, ToolArguments, phone_digits
from app.tools.base import Intent, ToolContext, ToolOutcome
from app.tools.contract import Contract, code, flag, text, texts
from app.tools.http import Backend, HttpTool, Request, Voice

if TYPE_CHECKING:
    from app.conversation.engine import ConversationState, TurnResult


def clock(value: Any) -> Any:
    """'9:30' → '09:30', '2:30 pm' → '14:30', '2pm' → '14:00'; anything else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    match = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?\s*([ap])\.?\s*m\.?", text)
    if match:
        hour = int(match.group(1)) % 12 + (12 if match.group(3) == "p" else 0)
        return f"{hour:02d}:{match.group(2) or '00'}"
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    return f"{int(match.group(1)):02d}:{match.group(2)}" if match else value.strip()


class BookingArguments(ToolArguments):
    """Who, which day and what time; a spoken time ("2:30 pm") is written 24-hour. Without a
    name the slot is only checked."""

    name: str | None = Field(
        default=None,
        description="the caller's name; leave it out to check the slot first",
        min_length=1,
        max_length=100,
    )
    date: str = Field(
        description="the day, YYYY-MM-DD",
        min_length=1,
        max_length=10,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    )
    time: str = Field(
        description="the start time, 24-hour HH:MM",
        min_length=1,
        max_length=5,
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
    )
    phone: str | None = Field(
        default=None,
        description="a phone number to confirm on, if the caller gave one",
        min_length=1,
        max_length=16,
        pattern=PHONE,
    )
    reason: str | None = Field(
        default=None,
        description="what the appointment is for, in a few words",
        min_length=1,
        max_length=200,
    )

    _time = field_validator("time", mode="before")(clock)
    _phone = field_validator("phone", mode="before")(phone_digits)

    # Checked once every argument is well formed: "2030-02-30" has the shape of a date.
    @model_validator(mode="after")
    def _real_day(self) -> BookingArguments:
        try:
            date.fromisoformat(self.date)
        except ValueError:
            raise PydanticCustomError(
                "calendar_day", "date {day} is not a real calendar day", {"day": self.date}
            ) from None
        return self


BOOKED = Contract(appointment_id=text(80), date=text(40), time=text(20), status=text(40))
TAKEN = Contract(alternatives=texts(limit=10, each=20))
SLOT = Contract(free=flag, alternatives=texts(limit=10, each=20))
# What the model is told once a slot is checked, and what the caller hears: the name is all a
# booking still needs.
ASK_NAME = "ask for the caller's name to book it"
OFFER_ANOTHER = "offer the alternatives and ask for the caller's name"
ASKS_NAME = "What name should I book it under?"
_NO_ROUTE = frozenset({404, 405, 501})


class Appointment(HttpTool):
    """POST /appointments on CALENDAR_API_URL (a taken slot comes back with alternatives); GET
    /availability there when the caller gave a day and a time but no name yet."""

    name = "book_appointment"
    description = (
        "Book an appointment. Use once the caller has given a date and a time; without "
        "their name yet, leave it out to check the slot, then ask for the name. Never "
        "invent a name, date or time: ask. If the slot is taken, offer the alternatives."
    )
    arguments = BookingArguments
    acts = True
    intent = Intent(
        "booking",
        re.compile(
            r"\b(book|booking|appointment|schedule|reserve|reservation|slot|fit (?:me|us) in|"
            r"come in)\b"
        ),
        lasting=True,
    )
    # Until the caller said a day and a time, the small model asks for them instead of making
    # them up; a name it has not heard is left out of what it sees (the slot is checked).
    grounding = {
        "name": lambda heard: heard.names,
        "date": lambda heard: heard.dates,
        "time": lambda heard: heard.times,
        "phone": lambda heard: heard.phones,
    }
    voice = Voice(
        "the booking calendar",
        "I can't reach our booking calendar right now.",
        "I couldn't book that appointment.",
        "I need your name, a day and a time to book that.",
    )

    def backend(self) -> Backend:
        settings = self.deps.settings
        return Backend(
            "CALENDAR_API_URL", settings.tools.calendar_api_url, settings.tools.calendar_api_key
        )

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        outcome = await super().run(call, ctx, state, result)
        if not outcome.ok or "name" in outcome.arguments:
            return outcome
        return replace(outcome, asks=_question(outcome.result))

    def tell(self, result: dict[str, Any]) -> str | None:
        when = f"{result.get('date')} at {result.get('time')}"
        if result.get("booked"):
            return f"You're booked in for {when}. See you then!"
        if result.get("booked") is False and result.get("reason") == "slot_taken":
            others = result.get("alternatives") or []
            if others:
                return (
                    f"Sorry, {when} was just taken, but I have {_either(others)}. Which suits you?"
                )
            return f"Sorry, {when} was just taken. Which other time suits you?"
        return None

    def request(self, args: dict[str, Any]) -> Request:
        if "name" not in args:
            slot = {"date": args["date"], "time": args["time"]}
            return Request("GET", ("availability",), params=slot)
        return Request("POST", ("appointments",), body=args)

    def read(
        self, status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if "name" not in args:
            return _checked(status, args, body)
        if 200 <= status < 300 and body is not None:
            return {"booked": True, **BOOKED.pick(body)}
        if status == 409 and body is not None:
            return {
                "booked": False,
                "reason": code(body.get("error")) or "slot_taken",
                "date": args["date"],
                "time": args["time"],
                "alternatives": TAKEN.pick(body).get("alternatives", []),
            }
        return None


def _question(checked: dict[str, Any]) -> str:
    """What the caller hears once the slot is checked."""
    if checked.get("free") is False:
        others = checked.get("alternatives") or []
        if others:
            return (
                f"That time is taken, but I have {_either(others)}. Which suits you, and what name?"
            )
        return "That time is taken. Which other time suits you, and what name?"
    if checked.get("free"):
        return f"That time is free. {ASKS_NAME}"
    return f"I can book that. {ASKS_NAME}"


def _either(times: list[str]) -> str:
    """ "10:30, 11:00 or 14:00"."""
    return ", ".join(times[:-1]) + (" or " if len(times) > 1 else "") + times[-1]


def _checked(
    status: int, args: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A slot check's result: free or not, with alternatives, and what to ask next."""
    if status in _NO_ROUTE:  # a calendar without the check: the booking will tell
        return {"date": args["date"], "time": args["time"], "next": ASK_NAME}
    if not (200 <= status < 300 and body is not None):
        return None
    slot = SLOT.pick(body)
    if slot.get("free"):
        return {"date": args["date"], "time": args["time"], "free": True, "next": ASK_NAME}
    return {
        "date": args["date"],
        "time": args["time"],
        "free": False,
        "alternatives": slot.get("alternatives", []),
        "next": OFFER_ANOTHER,
    }
