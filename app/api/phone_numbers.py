"""`/api/phone-numbers`: the organization's numbers and which agent answers each.

A number is claimed only if it belongs to the operator's Twilio account (asked through the
Twilio SDK when TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set). Without those credentials
nothing can prove whose a number is, so the API claims numbers only on a loopback server (a
developer's machine); elsewhere the operator assigns them with `velox numbers assign`.
Releasing a number is for organization admins.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from app.api.crud import check_reference, commit_or_409, delete_or_404
from app.api.deps import AdminPrincipal, SettingsDep, TenantSession, get_or_404
from app.api.errors import FieldValidationError, responses
from app.db.models import Agent, PhoneNumber
from app.settings import Settings
from app.telephony.numbers_api import TwilioNumbers, TwilioNumbersUnavailable

logger = logging.getLogger(__name__)

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
    responses=responses(403, 409, 503),
)
async def create_number(
    body: PhoneNumberCreate, session: TenantSession, settings: SettingsDep
) -> PhoneNumberOut:
    """Claim `number`, which must be one of the operator's Twilio numbers; 409 if any
    organization already has it."""
    await _check_agent(session, body.agent_id)
    await _check_ownership(body.number, settings)
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
    responses=responses(403, 404),
)
async def delete_number(
    number_id: uuid.UUID, session: TenantSession, _admin: AdminPrincipal
) -> Response:
    """The organization gives the number up; calls to it are no longer answered. Admins only."""
    return await delete_or_404(session, PhoneNumber, number_id, "phone number")


async def _check_agent(session: TenantSession, agent_id: uuid.UUID | None) -> None:
    await check_reference(session, Agent, agent_id, field="body.agent_id", what="agent")


async def _check_ownership(number: str, settings: Settings) -> None:
    """422 unless the operator's Twilio account has `number`; 403 when that cannot be known."""
    twilio = TwilioNumbers.from_settings(settings)
    if twilio is None:
        if settings.server.on_loopback:
            return  # a developer's own machine: nobody else can claim anything here
        raise HTTPException(
            403,
            "this server cannot check that a number is yours (TWILIO_ACCOUNT_SID and "
            "TWILIO_AUTH_TOKEN are not set): the operator assigns numbers with "
            "`velox numbers assign <number> --org <org id>`",
        )
    async with twilio:
        try:
            owned = await twilio.owns(number)
        except TwilioNumbersUnavailable as exc:
            logger.error("checking a claimed number with Twilio failed: %s", exc)
            raise HTTPException(
                503, "could not check the number with Twilio; try again later"
            ) from exc
    if not owned:
        raise FieldValidationError(
            "body.number",
            f"{number} is not a number of this server's Twilio account: buy or port it into "
            "that account first",
        )
