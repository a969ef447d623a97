"""`/api/api-keys`: create (shown once), list and revoke the organization's API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.crud import no_content
from app.api.deps import TenantSession, get_or_404
from app.api.errors import responses
from app.auth.api_keys import mint_api_key
from app.db.models import ApiKey

router = APIRouter(prefix="/api/api-keys", tags=["api keys"], responses=responses(401, 422))


class ApiKeyCreate(BaseModel):
    """A label for the key, to recognise it later."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
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


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key")
async def create_key(body: ApiKeyCreate, session: TenantSession) -> ApiKeyCreated:
    """A new key for the organization; store it now, it is not shown again."""
    minted = mint_api_key()
    row = ApiKey(name=body.name, prefix=minted.prefix, key_hash=minted.key_hash)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=minted.secret)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=responses(404),
)
async def revoke_key(key_id: uuid.UUID, session: TenantSession) -> Response:
    """The key stops working at once (it stays listed as revoked)."""
    row = await get_or_404(session, ApiKey, key_id, "API key")
    row.revoked_at = row.revoked_at or datetime.now(UTC)
    await session.commit()
    return no_content()
