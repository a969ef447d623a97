"""Turns `Authorization: Bearer …` into the organization a request acts for."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.api_keys import hash_api_key, looks_like_api_key
from app.auth.clerk import ClerkError, ClerkIdentity, ClerkVerifier
from app.db.database import Database
from app.db.models import ApiKey, Member, Organization

logger = logging.getLogger(__name__)

# Writing last_used_at on every request would turn reads into writes; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A key made by a key made by a key ...: followed this far, then treated as a member's.
MAX_CREATOR_CHAIN = 8

Role = Literal["admin", "member"]

# Clerk's built-in admin role key; every other role (org:member, custom ones) is a member here.
# Source: clerk.com/docs/organizations/roles-permissions (default roles)
CLERK_ADMIN_ROLE = "org:admin"


def role_from_clerk(org_role: str | None) -> Role:
    """Our role for a Clerk organization role (`org:admin` or anything else)."""
    return "admin" if org_role == CLERK_ADMIN_ROLE else "member"


class AuthError(Exception):
    """Not authenticated (401), not allowed (403), or Clerk unavailable (503)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of the API.

    `role` is the Clerk user's organization role, or for an API key the role of whoever made
    it (a key made from the CLI, or before keys had owners, acts as an admin).
    """

    org_id: uuid.UUID
    subject: str  # a Clerk user id, or the API key's id
    via: Literal["clerk", "api_key"]
    role: Role

    @property
    def is_admin(self) -> bool:
        """Whether this caller may manage keys and delete agents or numbers."""
        return self.role == "admin"


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
            if key.expires_at is not None and key.expires_at <= now:
                raise AuthError("API key expired: create a new one")
            role = await self._creator_role(session, key)
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key.id, ApiKey.org_id == key.org_id)
                    .values(last_used_at=now)
                )
                await session.commit()
            return Principal(org_id=key.org_id, subject=str(key.id), via="api_key", role=role)

    async def _creator_role(self, session: AsyncSession, key: ApiKey) -> Role:
        """The role of whoever made `key`, followed through keys made by keys.

        Read on every use, so a key stops acting as an admin once its maker is one no longer.
        """
        created_by = key.created_by
        for _ in range(MAX_CREATOR_CHAIN):
            if created_by is None:
                return "admin"  # the operator's CLI, or a key older than key owners
            creator_key = _as_uuid(created_by)
            if creator_key is None:
                member_role = await session.scalar(
                    select(Member.role).where(
                        Member.org_id == key.org_id, Member.user_id == created_by
                    )
                )
                # Rows written before roles were normalized hold Clerk's spelling.
                return "admin" if member_role in ("admin", CLERK_ADMIN_ROLE) else "member"
            maker = (
                await session.execute(
                    select(ApiKey.created_by).where(
                        ApiKey.org_id == key.org_id, ApiKey.id == creator_key
                    )
                )
            ).first()
            if maker is None:
                return "member"  # the key that made this one is gone: trust it no further
            created_by = maker.created_by
        return "member"

    async def _clerk_member(self, identity: ClerkIdentity) -> Principal:
        if identity.org_id is None:
            raise AuthError(
                "the session has no active organization: select one in the dashboard", 403
            )
        role = role_from_clerk(identity.org_role)
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
            # The role follows Clerk's on every sign-in (written only when it changed), so the
            # keys a demoted admin made act as a member's from then on.
            member = insert(Member).values(
                id=uuid.uuid4(), org_id=org_id, user_id=identity.user_id, role=role
            )
            await session.execute(
                member.on_conflict_do_update(
                    index_elements=["org_id", "user_id"],
                    set_={"role": member.excluded.role},
                    where=Member.role != member.excluded.role,
                )
            )
            await session.commit()
        return Principal(org_id=org_id, subject=identity.user_id, via="clerk", role=role)


def _as_uuid(value: str) -> uuid.UUID | None:
    """An API key id (a key made by a key), or None for a Clerk user id."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
