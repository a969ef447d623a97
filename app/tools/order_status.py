"""`check_order_status`: an order's status, delivery date and tracking, from the order system."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from app.tools.arguments import ToolArguments
from app.tools.base import Intent
from app.tools.contract import Contract, number, records, text
from app.tools.http import Backend, HttpTool, Request, Voice, lookup


class OrderArguments(ToolArguments):
    """An order number as it was spoken: "a 1042" and "#A1042" are both "A1042"."""

    order_id: str = Field(
        description="the order number as the caller said it, e.g. A1042",
        min_length=1,
        max_length=20,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{2,19}$",
    )

    @field_validator("order_id", mode="before")
    @classmethod
    def _spoken(cls, value: Any) -> Any:
        return re.sub(r"\s", "", value).lstrip("#").upper() if isinstance(value, str) else value


# The README's contract, and the demo backend's `delivered_on`.
ORDER = Contract(
    order_id=text(40),
    status=text(40),
    eta=text(40),
    delivered_on=text(40),
    carrier=text(80),
    tracking_number=text(80),
    items=records(Contract(sku=text(40), name=text(200), quantity=number)),
)


# How an order's status is said where "is <status>" would not do.
_STATUS_SAID = {
    "preparing": "is being prepared",
    "processing": "is being prepared",
    "in progress": "is being prepared",
    "cancelled": "was cancelled",
    "canceled": "was cancelled",
    "ready": "is ready for pickup",
}


class OrderStatus(HttpTool):
    """GET /orders/{order_id} on ORDER_API_URL."""

    name = "check_order_status"
    description = (
        "Look up an order's status, delivery date and tracking. Use only when the caller "
        "gave an order number; if they did not, ask for it first. Never guess a number."
    )
    arguments = OrderArguments
    intent = Intent(
        "order",
        re.compile(r"\b(order|orders|delivery|package|shipment|tracking|shipped|parcel)\b"),
        lasting=True,
    )
    # Without a number the caller said, the small model asks for one instead of inventing it.
    grounding = {"order_id": lambda heard: heard.codes}
    voice = Voice(
        "the order system",
        "I can't reach our order system right now.",
        "I couldn't look up that order just now.",
        "Could you tell me your order number?",
    )

    def backend(self) -> Backend:
        settings = self.deps.settings
        return Backend("ORDER_API_URL", settings.tools.order_api_url, settings.tools.order_api_key)

    def request(self, args: dict[str, Any]) -> Request:
        return Request("GET", ("orders", args["order_id"]))

    def read(
        self, status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        return lookup("order_id", status, args, body, ORDER)

    def tell(self, result: dict[str, Any]) -> str | None:
        number = result.get("order_id")
        if not result.get("found"):
            return f"I couldn't find order {number}. Could you check the number for me?"
        order = f"Order {number}" if number else "Your order"
        status = str(result.get("status") or "").replace("_", " ").strip().lower()
        if not status:
            return None
        eta, on = result.get("eta"), result.get("delivered_on")
        if status == "shipped":
            carrier = f" with {result['carrier']}" if result.get("carrier") else ""
            return f"{order} has shipped{carrier}" + (
                f" and should arrive on {eta}." if eta else "."
            )
        if status == "delivered":
            return f"{order} was delivered" + (f" on {on}." if on else ".")
        said = _STATUS_SAID.get(status, f"is {status}")
        return f"{order} {said}" + (f", and should be ready by {eta}." if eta else ".")
