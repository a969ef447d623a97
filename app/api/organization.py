"""`/api/organization`: the caller's organization and the settings it chooses for itself."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import AdminPrincipal, CurrentPrincipal, TenantSession
from app.api.errors import FieldValidationError, responses
from app.db.models import Organization

router = APIRouter(
    prefix="/api/organization", tags=["organization"], responses=responses(401, 404, 422)
)


class OrganizationOut(BaseModel):
    """The organization as its members see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    redact_payment_data: bool = Field(
        description="Card numbers, security codes and card expiry dates, spoken or keyed, are "
        "replaced by placeholders before a transcript is stored or sent to a model"
    )
    max_concurrent_calls: int | None = Field(
        description="The organization's own cap on live calls (null: the deployment's)"
    )


class OrganizationUpdate(BaseModel):
    """The settings to change; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    redact_payment_data: StrictBool | None = None


@router.get("", summary="Show the organization")
async def get_organization(session: TenantSession, principal: CurrentPrincipal) -> OrganizationOut:
    """The caller's organization and its settings."""
    return OrganizationOut.model_validate(await _organization(session, principal.org_id))


@router.patch("", summary="Change the organization's settings", responses=responses(403))
async def update_organization(
    body: OrganizationUpdate, session: TenantSession, principal: AdminPrincipal
) -> OrganizationOut:
    """Change the settings given (organization admins only): `redact_payment_data` applies from
    the next call or message."""
    org = await _organization(session, principal.org_id)
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None:
            raise FieldValidationError(f"body.{field}", "cannot be null")
        setattr(org, field, value)
    await session.commit()
    await session.refresh(org)
    return OrganizationOut.model_validate(org)


async def _organization(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    # Organizations are not tenant rows: the principal's own id is the filter.
    org = await session.scalar(select(Organization).where(Organization.id == org_id))
    if org is None:  # deleted while its key was still in use
        raise HTTPException(404, f"organization {org_id} not found")
    return org
