"""`/api/api-keys`: create (shown once), list and revoke the organization's API keys.

Only organization admins create or revoke keys; each key records who made it (a Clerk user id,
or the id of the key that made it) and acts with that maker's role.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from app.api.crud import no_content
from app.api.deps import AdminPrincipal, TenantSession, get_or_404
from app.api.errors import responses
from app.auth.api_keys import mint_api_key
from app.db.models import ApiKey

router = APIRouter(prefix="/api/api-keys", tags=["api keys"], responses=responses(401, 422))


class ApiKeyCreate(BaseModel):
    """A label for the key, to recognise it later, and when it stops working (if ever)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (ISO 8601 with a time zone); null: never",
        examples=["2030-01-01T00:00:00Z"],
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKeyOut(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    created_by: str | None = Field(
        description="Who made the key: a Clerk user id, the id of the API key that made it, "
        "or null for a key made by the operator (`velox org create`)"
    )
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new key: `key` is shown this once and never again."""

    key: str


class ApiKeyList(BaseModel):
    """The organization's keys, newest first."""

    items: list[ApiKeyOut]


@router.get("", summary="List API keys")
async def list_keys(session: TenantSession) -> ApiKeyList:
    """Every key of the organization, revoked ones included."""
    rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc()))
    return ApiKeyList(items=[ApiKeyOut.model_validate(r) for r in rows])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    responses=responses(403),
)
async def create_key(
    body: ApiKeyCreate, session: TenantSession, principal: AdminPrincipal
) -> ApiKeyCreated:
    """A new key for the organization (admins only); store it now, it is not shown again."""
    minted = mint_api_key()
    row = ApiKey(
        name=body.name,
        prefix=minted.prefix,
        key_hash=minted.key_hash,
        created_by=principal.subject,
        expires_at=body.expires_at,
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=minted.secret)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=responses(403, 404),
)
async def revoke_key(key_id: uuid.UUID, session: TenantSession, _admin: AdminPrincipal) -> Response:
    """The key stops working at once (it stays listed as revoked). Admins only."""
    row = await get_or_404(session, ApiKey, key_id, "API key")
    row.revoked_at = row.revoked_at or datetime.now(UTC)
    await session.commit()
    return no_content()
