"""`check_item_stock`: whether a product is in stock, from the inventory system."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from app.tools.arguments import ToolArguments
from app.tools.base import Intent
from app.tools.contract import Contract, flag, number, text
from app.tools.http import Backend, HttpTool, Request, Voice, lookup


class StockArguments(ToolArguments):
    """The product asked about."""

    item: str = Field(
        description="the product name or SKU, e.g. croissant or CR-200",
        min_length=1,
        max_length=100,
    )


STOCK = Contract(
    item=text(200),
    sku=text(40),
    name=text(200),
    in_stock=flag,
    quantity=number,
    restock_date=text(40),
)


class ItemStock(HttpTool):
    """GET /stock?item= on INVENTORY_API_URL."""

    name = "check_item_stock"
    description = (
        "Check whether a product is in stock, how many are left and when it comes back. "
        "Use when the caller asks if we have something. Not for orders already placed."
    )
    arguments = StockArguments
    intent = Intent(
        "stock",
        re.compile(
            r"\b(in stock|stock|available|availability|do you have|have any|do you sell|"
            r"do you carry|sold out|left|got any|have you got|still got|still have|"
            r"are there any)\b"
        ),
        lasting=True,
    )
    voice = Voice(
        "the inventory system",
        "I can't check our stock right now.",
        "I couldn't check that item just now.",
        "Which item would you like me to check?",
    )

    def backend(self) -> Backend:
        settings = self.deps.settings
        return Backend(
            "INVENTORY_API_URL", settings.tools.inventory_api_url, settings.tools.inventory_api_key
        )

    def request(self, args: dict[str, Any]) -> Request:
        return Request("GET", ("stock",), params={"item": args["item"]})

    def read(
        self, status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        return lookup("item", status, args, body, STOCK)

    def tell(self, result: dict[str, Any]) -> str | None:
        name = result.get("name") or result.get("item") or "that"
        if not result.get("found"):
            return f"Sorry, I couldn't find {name} in our range."
        if result.get("in_stock") is True:
            left = result.get("quantity")
            left = int(left) if isinstance(left, float) and left.is_integer() else left
            return f"Yes, we have {name} in stock" + (f", {left} left." if left else ".")
        if result.get("in_stock") is False:
            back = result.get("restock_date")
            return f"Sorry, {name} is sold out" + (f"; it's back on {back}." if back else ".")
        return None
