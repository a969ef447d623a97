"""`get_customer_profile`: the caller's customer record, by the number they call from."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from app.tools.arguments import PHONE, ToolArguments, phone_digits
from app.tools.base import Intent, ToolContext
from app.tools.contract import Contract, text, texts
from app.tools.http import Backend, HttpTool, Request, Voice, lookup


class ProfileArguments(ToolArguments):
    """Another number than the caller's, if they gave one."""

    phone: str | None = Field(
        default=None,
        description="only if the caller gave another number for their account",
        min_length=1,
        max_length=16,
        pattern=PHONE,
    )

    _phone = field_validator("phone", mode="before")(phone_digits)


PROFILE = Contract(
    customer_id=text(80),
    name=text(200),
    phone=text(20),
    tier=text(40),
    open_orders=texts(),
    notes=text(1000),
)


class CustomerProfile(HttpTool):
    """GET /customers?phone= on CRM_API_URL."""

    name = "get_customer_profile"
    description = (
        "Look up the caller's customer record: name, tier, open orders, notes. Use when "
        "knowing who is calling helps. Leave phone out to use the number they call from."
    )
    arguments = ProfileArguments
    intent = Intent(
        "account",
        re.compile(r"\b(my account|my profile|my details|membership|loyalty|points)\b"),
        lasting=True,
    )
    # A number the caller did not say is not shown to the small model (it would make one up):
    # the number they call from is used instead.
    grounding = {"phone": lambda heard: heard.phones}
    voice = Voice(
        "the customer records",
        "I can't pull up your account right now.",
        "I couldn't find your account details just now.",
        "Could you tell me the phone number on your account?",
    )

    def backend(self) -> Backend:
        settings = self.deps.settings
        return Backend("CRM_API_URL", settings.tools.crm_api_url, settings.tools.crm_api_key)

    def complete(self, raw: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if not raw.get("phone") and ctx.caller_number:
            caller = phone_digits(ctx.caller_number)
            if re.fullmatch(PHONE, caller):  # Twilio sends "Anonymous" for withheld numbers
                raw["phone"] = caller
        return raw

    def lacking(self, args: dict[str, Any]) -> str | None:
        if "phone" in args:
            return None
        return "missing phone: the caller's number is withheld; ask for the account's number"

    def request(self, args: dict[str, Any]) -> Request:
        return Request("GET", ("customers",), params={"phone": args["phone"]})

    def read(
        self, status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        return lookup("phone", status, args, body, PROFILE)
