"""An example business API implementing the tool contracts (README, "Tool HTTP contracts") with
in-memory sample data for a bakery: `velox demo-backend` serves it for trying tools on calls.

Every tool shares its one base URL. Dates are relative to the day the app is created, so the
sample orders and the calendar always look current.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

OPENING = time(9, 0)
CLOSING = time(17, 0)  # the last slot starts half an hour before
SLOT_MINUTES = 30


class AppointmentIn(BaseModel):
    """The body of POST /appointments."""

    name: str = Field(min_length=1, max_length=100)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2030-05-14"])
    time: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["14:30"])
    phone: str | None = None
    reason: str | None = None


class TranscriptLine(BaseModel):
    """One line of a handoff's transcript."""

    role: str
    text: str


class HandoffIn(BaseModel):
    """The body of POST /handoffs."""

    conversation_id: str | None = None
    call_sid: str | None = None
    caller: str | None = None
    reason: str
    summary: str = ""
    transcript: list[TranscriptLine] = []


@dataclass
class DemoData:
    """The sample business, mutable so bookings and handoffs stick for the process's life."""

    today: date
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    appointments: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # idempotency


def sample_data(today: date) -> DemoData:
    """A bakery's orders, stock, customers and calendar around `today`."""

    def day(offset: int) -> str:
        return (today + timedelta(days=offset)).isoformat()

    croissants = {"sku": "CR-200", "name": "Butter croissant", "quantity": 12}
    sourdough = {"sku": "SD-100", "name": "Sourdough loaf", "quantity": 2}
    cake = {"sku": "CK-500", "name": "Custom chocolate cake", "quantity": 1}
    data = DemoData(today=today)
    data.orders = {
        "A1001": {
            "order_id": "A1001",
            "status": "delivered",
            "delivered_on": day(-3),
            "items": [sourdough],
        },
        "A1042": {
            "order_id": "A1042",
            "status": "shipped",
            "eta": day(1),
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "items": [croissants, sourdough],
        },
        "A1043": {"order_id": "A1043", "status": "preparing", "eta": day(2), "items": [cake]},
        "A1050": {"order_id": "A1050", "status": "cancelled", "items": [croissants]},
    }
    data.items = [
        {"sku": "CR-200", "name": "Butter croissant", "in_stock": True, "quantity": 48},
        {"sku": "CR-210", "name": "Almond croissant", "in_stock": True, "quantity": 6},
        {"sku": "SD-100", "name": "Sourdough loaf", "in_stock": True, "quantity": 12},
        {"sku": "RY-120", "name": "Rye bread", "in_stock": True, "quantity": 3},
        {
            "sku": "BG-310",
            "name": "Sesame bagel",
            "in_stock": False,
            "quantity": 0,
            "restock_date": day(1),
        },
        {
            "sku": "CK-500",
            "name": "Custom chocolate cake",
            "in_stock": False,
            "quantity": 0,
            "restock_date": day(2),
        },
    ]
    data.customers = [
        {
            "customer_id": "C-001",
            "name": "Maria Lopez",
            "phone": "+15550199",  # the simulated caller of `velox call`
            "tier": "gold",
            "open_orders": ["A1042"],
            "notes": "Prefers pickup before 9 am. Allergic to nuts.",
        },
        {
            "customer_id": "C-002",
            "name": "James Chen",
            "phone": "+14155550123",
            "tier": "standard",
            "open_orders": ["A1043"],
            "notes": "Ordered a birthday cake for the weekend.",
        },
    ]
    for offset, slot in ((1, "10:00"), (1, "10:30"), (1, "14:00"), (2, "09:00")):
        data.appointments.append(
            {
                "appointment_id": f"APT-{len(data.appointments) + 1:04d}",
                "name": "(booked)",
                "date": day(offset),
                "time": slot,
                "status": "confirmed",
            }
        )
    return data


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _same_phone(a: str, b: str) -> bool:
    # "+1 415 555 0123" and "4155550123" are one number: compare the last ten digits.
    da, db = _digits(a), _digits(b)
    return bool(da) and da[-10:] == db[-10:]


def _words(text: str) -> set[str]:
    # Plurals are what callers say ("croissants"); the catalogue is singular.
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z]+", text)}


def find_item(items: list[dict[str, Any]], query: str) -> dict[str, Any] | None:
    """The item whose SKU appears in `query`, else the one sharing the most words with it."""
    packed = re.sub(r"[^a-z0-9]", "", query.lower())
    for item in items:
        if re.sub(r"[^a-z0-9]", "", item["sku"].lower()) in packed:
            return item
    wanted = _words(query.lower())
    scored = [(len(wanted & _words(item["name"].lower())), item) for item in items]
    best = max(scored, key=lambda pair: pair[0], default=(0, None))
    return best[1] if best[0] else None


def _slots() -> list[str]:
    start = datetime.combine(date.min, OPENING)
    end = datetime.combine(date.min, CLOSING)
    out = []
    while start < end:
        out.append(start.strftime("%H:%M"))
        start += timedelta(minutes=SLOT_MINUTES)
    return out


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def free_slots_near(data: DemoData, day: str, wanted: str, limit: int = 3) -> list[str]:
    """The free slots on `day` closest to `wanted`, earliest first among equals."""
    taken = {a["time"] for a in data.appointments if a["date"] == day}
    free = [s for s in _slots() if s not in taken]
    free.sort(key=lambda s: (abs(_minutes(s) - _minutes(wanted)), s))
    return sorted(free[:limit])


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def create_demo_backend(*, api_key: str | None = None, today: date | None = None) -> FastAPI:
    """The example business API; with `api_key`, every request needs `Bearer <api_key>`."""
    data = sample_data(today or date.today())

    async def authorized(
        authorization: Annotated[str | None, Header()] = None,
    ) -> None:
        if api_key is None:
            return
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(presented.encode(), api_key.encode()):
            raise _Unauthorized

    app = FastAPI(
        title="Velox demo business API",
        description="Orders, stock, calendar, customers and handoffs for Rosa's Bakery.",
        dependencies=[Depends(authorized)],
    )
    app.state.data = data

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: Exception) -> JSONResponse:
        return _error(401, "unauthorized", message="send Authorization: Bearer <api key>")

    @app.get("/orders/{order_id}", summary="An order's status")
    async def get_order(order_id: str) -> JSONResponse:
        order = data.orders.get(order_id.upper())
        if order is None:
            return _error(404, "order_not_found", order_id=order_id)
        return JSONResponse(order)

    @app.get("/stock", summary="An item's stock, by name or SKU")
    async def get_stock(item: Annotated[str, Query(min_length=1)]) -> JSONResponse:
        found = find_item(data.items, item)
        if found is None:
            return _error(404, "item_not_found", item=item)
        return JSONResponse({"item": found["name"], **found})

    @app.get("/availability", summary="Whether a slot is free, with the free ones nearest it")
    async def availability(
        day: Annotated[str, Query(alias="date", pattern=r"^\d{4}-\d{2}-\d{2}$")],
        at: Annotated[str, Query(alias="time", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")],
    ) -> JSONResponse:
        try:
            if date.fromisoformat(day) < data.today:
                return _error(422, "date_in_past", message=f"{day} has passed")
        except ValueError:
            return _error(422, "invalid_date", message=f"{day} is not a calendar day")
        taken = any(a["date"] == day and a["time"] == at for a in data.appointments)
        free = at in _slots() and not taken
        alternatives = [] if free else free_slots_near(data, day, at)
        return JSONResponse({"date": day, "time": at, "free": free, "alternatives": alternatives})

    @app.post("/appointments", summary="Book a slot (send an Idempotency-Key)")
    async def book(
        appointment: AppointmentIn,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        if idempotency_key and idempotency_key in data.replies:
            status, body = data.replies[idempotency_key]
            return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
        try:
            day = date.fromisoformat(appointment.date)
        except ValueError:
            return _error(422, "invalid_date", message=f"{appointment.date} is not a calendar day")
        if day < data.today:
            return _error(422, "date_in_past", message=f"{appointment.date} has passed")
        if appointment.time not in _slots():
            alternatives = free_slots_near(data, appointment.date, appointment.time)
            return _error(409, "outside_hours", alternatives=alternatives)
        if any(
            a["date"] == appointment.date and a["time"] == appointment.time
            for a in data.appointments
        ):
            alternatives = free_slots_near(data, appointment.date, appointment.time)
            return _error(409, "slot_taken", alternatives=alternatives)
        booked = {
            "appointment_id": f"APT-{len(data.appointments) + 1:04d}",
            **appointment.model_dump(exclude_none=True),
            "status": "confirmed",
        }
        data.appointments.append(booked)
        reply = {k: booked[k] for k in ("appointment_id", "date", "time", "status")}
        if idempotency_key:
            data.replies[idempotency_key] = (201, reply)
        return JSONResponse(reply, status_code=201)

    @app.get("/customers", summary="A customer, by phone number")
    async def get_customer(phone: Annotated[str, Query(min_length=1)]) -> JSONResponse:
        for customer in data.customers:
            if _same_phone(customer["phone"], phone):
                return JSONResponse(customer)
        return _error(404, "customer_not_found", phone=phone)

    @app.post("/handoffs", summary="A call is coming to the team")
    async def handoff(
        notice: HandoffIn,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        if idempotency_key and idempotency_key in data.replies:
            status, body = data.replies[idempotency_key]
            return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
        reply = {"handoff_id": f"H-{len(data.handoffs) + 1:04d}"}
        data.handoffs.append({**reply, **notice.model_dump()})
        if idempotency_key:
            data.replies[idempotency_key] = (202, reply)
        return JSONResponse(reply, status_code=202)

    @app.get("/handoffs", summary="The handoffs received, newest last")
    async def list_handoffs() -> list[dict[str, Any]]:
        return data.handoffs

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


class _Unauthorized(Exception):
    pass
