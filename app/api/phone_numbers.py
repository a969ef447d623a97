"""`/api/phone-numbers`: the organization's numbers and which agent answers each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from app.api.crud import check_reference, commit_or_409, delete_or_404
from app.api.deps import TenantSession, get_or_404
from app.api.errors import responses
from app.db.models import Agent, PhoneNumber

router = APIRouter(
    prefix="/api/phone-numbers", tags=["phone numbers"], responses=responses(401, 422)
)

E164 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9]\d{6,14}$"),
    Field(description="E.164, as Twilio sends it in `To`: +14155550100", examples=["+14155550100"]),
]


class PhoneNumberCreate(BaseModel):
    """Claim a number for the organization, optionally routed to an agent."""

    model_config = ConfigDict(extra="forbid")

    number: E164
    agent_id: uuid.UUID | None = None


class PhoneNumberUpdate(BaseModel):
    """Route the number to another agent (null: unassigned)."""

    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID | None


class PhoneNumberOut(BaseModel):
    """A number and its agent."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    agent_id: uuid.UUID | None
    created_at: datetime


class PhoneNumberList(BaseModel):
    """The organization's numbers."""

    items: list[PhoneNumberOut]


@router.get("", summary="List phone numbers")
async def list_numbers(session: TenantSession) -> PhoneNumberList:
    """Every number of the caller's organization."""
    rows = await session.scalars(select(PhoneNumber).order_by(PhoneNumber.number))
    return PhoneNumberList(items=[PhoneNumberOut.model_validate(r) for r in rows])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Attach a phone number",
    responses=responses(409),
)
async def create_number(body: PhoneNumberCreate, session: TenantSession) -> PhoneNumberOut:
    """Claim `number`; 409 if any organization already has it."""
    await _check_agent(session, body.agent_id)
    row = PhoneNumber(number=body.number, agent_id=body.agent_id)
    session.add(row)
    await commit_or_409(session, f"{body.number} is already attached to an agent")
    return PhoneNumberOut.model_validate(row)


@router.get("/{number_id}", summary="Get a phone number", responses=responses(404))
async def get_number(number_id: uuid.UUID, session: TenantSession) -> PhoneNumberOut:
    """One number."""
    return PhoneNumberOut.model_validate(
        await get_or_404(session, PhoneNumber, number_id, "phone number")
    )


@router.patch("/{number_id}", summary="Route a number to an agent", responses=responses(404))
async def update_number(
    number_id: uuid.UUID, body: PhoneNumberUpdate, session: TenantSession
) -> PhoneNumberOut:
    """Calls to this number go to `agent_id` from now on."""
    row = await get_or_404(session, PhoneNumber, number_id, "phone number")
    await _check_agent(session, body.agent_id)
    row.agent_id = body.agent_id
    await session.commit()
    return PhoneNumberOut.model_validate(row)


@router.delete(
    "/{number_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Release a phone number",
    responses=responses(404),
)
async def delete_number(number_id: uuid.UUID, session: TenantSession) -> Response:
    """The organization gives the number up; calls to it are no longer answered."""
    return await delete_or_404(session, PhoneNumber, number_id, "phone number")


async def _check_agent(session: TenantSession, agent_id: uuid.UUID | None) -> None:
    await check_reference(session, Agent, agent_id, field="body.agent_id", what="agent")
