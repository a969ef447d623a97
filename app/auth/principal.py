"""Turns `Authorization: Bearer …` into the organization a request acts for."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from app.auth.api_keys import hash_api_key, looks_like_api_key
from app.auth.clerk import ClerkError, ClerkIdentity, ClerkVerifier
from app.db.database import Database
from app.db.models import ApiKey, Member, Organization

logger = logging.getLogger(__name__)

# Writing last_used_at on every request would turn reads into writes; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AuthError(Exception):
    """Not authenticated (401), not allowed (403), or Clerk unavailable (503)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of the API."""

    org_id: uuid.UUID
    subject: str  # a Clerk user id, or the API key's id
    via: Literal["clerk", "api_key"]
    role: str = "admin"


class Authenticator:
    """Checks bearer credentials against Clerk (when configured) and the org API keys."""

    def __init__(self, db: Database, clerk: ClerkVerifier | None = None) -> None:
        self.db = db
        self.clerk = clerk

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization` header, or AuthError."""
        if not authorization:
            raise AuthError("missing Authorization header: send 'Bearer <API key or Clerk JWT>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <API key or Clerk JWT>'")
        if looks_like_api_key(token):
            return await self._api_key(token)
        if self.clerk is None:
            raise AuthError("not an API key, and Clerk sign-in is not configured on this server")
        try:
            identity = await self.clerk.verify(token)
        except ClerkError as exc:
            if exc.upstream:  # Clerk is unreachable or misconfigured: not the caller's fault
                raise AuthError(f"cannot verify session tokens now: {exc.reason}", 503) from exc
            raise AuthError(f"invalid session token: {exc.reason}") from exc
        return await self._clerk_member(identity)

    async def _api_key(self, token: str) -> Principal:
        now = datetime.now(UTC)
        async with self.db.system() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(token)))
            if key is None or key.revoked_at is not None:
                raise AuthError("unknown or revoked API key")
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key.id, ApiKey.org_id == key.org_id)
                    .values(last_used_at=now)
                )
                await session.commit()
            return Principal(org_id=key.org_id, subject=str(key.id), via="api_key")

    async def _clerk_member(self, identity: ClerkIdentity) -> Principal:
        if identity.org_id is None:
            raise AuthError(
                "the session has no active organization: select one in the dashboard", 403
            )
        role = identity.org_role or "member"
        async with self.db.system() as session:
            # The first request from a Clerk organization provisions its tenant; ON CONFLICT
            # makes two first requests at once agree on one row.
            await session.execute(
                insert(Organization)
                .values(
                    id=uuid.uuid4(),
                    name=identity.org_slug or identity.org_id,
                    clerk_org_id=identity.org_id,
                )
                .on_conflict_do_nothing(index_elements=["clerk_org_id"])
            )
            org_id = await session.scalar(
                select(Organization.id).where(Organization.clerk_org_id == identity.org_id)
            )
            assert org_id is not None
            await session.execute(
                insert(Member)
                .values(id=uuid.uuid4(), org_id=org_id, user_id=identity.user_id, role=role)
                .on_conflict_do_nothing(index_elements=["org_id", "user_id"])
            )
            await session.commit()
        return Principal(org_id=org_id, subject=identity.user_id, via="clerk", role=role)
