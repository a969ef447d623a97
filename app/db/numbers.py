"""Assigning phone numbers outside the API: the operator's `velox numbers assign`.

The API lets a tenant claim a number only when Twilio confirms the operator's account owns it
(or on a developer's loopback server); the operator, who knows which numbers are whose, assigns
them here directly.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db.database import Database
from app.db.models import Agent, Organization, PhoneNumber

E164 = re.compile(r"\+[1-9]\d{6,14}")


class AssignError(ValueError):
    """The assignment cannot be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a number went: `created` is False when the org already had it."""

    number_id: uuid.UUID
    number: str
    org_id: uuid.UUID
    agent_id: uuid.UUID | None
    created: bool


async def assign_number(
    db: Database, number: str, org_id: uuid.UUID, agent_id: uuid.UUID | None = None
) -> Assignment:
    """Give `number` to `org_id`, answered by `agent_id` (one of that org's agents) if given.

    A number the organization already has is re-routed to `agent_id` (when given); one another
    organization has is refused: it must be released there first.

    Raises:
        AssignError: the number is not E.164, the org or agent does not exist, or another
            organization has the number.
    """
    number = number.strip()
    if not E164.fullmatch(number):
        raise AssignError(f"{number!r} is not an E.164 number (like +14155550100)")
    async with db.system() as session:
        if await session.get(Organization, org_id) is None:
            raise AssignError(f"no organization {org_id}")
        if agent_id is not None:
            agent_org = await session.scalar(select(Agent.org_id).where(Agent.id == agent_id))
            if agent_org != org_id:
                raise AssignError(f"no agent {agent_id} in organization {org_id}")
        row = await session.scalar(
            select(PhoneNumber).where(PhoneNumber.number == number).with_for_update()
        )
        created = row is None
        if row is None:
            row = PhoneNumber(org_id=org_id, number=number, agent_id=agent_id)
            session.add(row)
        elif row.org_id != org_id:
            raise AssignError(
                f"{number} belongs to organization {row.org_id}: release it there first "
                "(DELETE /api/phone-numbers/<id> as that organization's admin)"
            )
        elif agent_id is not None:
            row.agent_id = agent_id
        try:
            await session.commit()
        except IntegrityError as exc:
            raise AssignError(f"{number} was assigned by someone else just now; run again") from exc
        return Assignment(
            number_id=row.id,
            number=row.number,
            org_id=row.org_id,
            agent_id=row.agent_id,
            created=created,
        )
