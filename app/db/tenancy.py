"""The one place that scopes queries to an organization.

A session opened with `info={"org_id": ...}` gets `org_id = :org` added to every ORM SELECT,
UPDATE and DELETE touching a `TenantOwned` table (joins and relationship loads included), and
its new rows are stamped with that org. A session opened as `system` (routing a call by its
phone number, migrations, the CLI) must name orgs itself; any other session refuses tenant
queries outright, so forgetting the scope is an error, not a leak.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from app.db.models import TenantOwned

ORG_KEY = "org_id"
SYSTEM_KEY = "system"


class UnscopedQueryError(RuntimeError):
    """A tenant table was queried from a session that belongs to no organization."""


class ScopedSession(Session):
    """The sync session behind every AsyncSession Velox opens."""


def org_of(session: Session) -> uuid.UUID | None:
    """The organization a session is scoped to (None for a system session)."""
    org = session.info.get(ORG_KEY)
    if org is None and not session.info.get(SYSTEM_KEY):
        raise UnscopedQueryError(
            "session has no org_id: open it with Database.tenant(org_id) or Database.system()"
        )
    return org if isinstance(org, uuid.UUID) else None


@event.listens_for(ScopedSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_insert:
        _refuse_tenant_bulk_insert(state)
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent row was already loaded under the scope; loader criteria propagate
    org = org_of(state.session)
    if org is None:
        return
    state.statement = state.statement.options(
        with_loader_criteria(TenantOwned, lambda cls: cls.org_id == org, include_aliases=True)
    )


def _refuse_tenant_bulk_insert(state: ORMExecuteState) -> None:
    # insert(Model).values(...) bypasses the flush that stamps org_id, so a tenant session
    # may only add rows through session.add(); bulk loads belong in a system session.
    if state.session.info.get(ORG_KEY) is None:
        return
    if any(issubclass(m.class_, TenantOwned) for m in state.all_mappers):
        raise UnscopedQueryError("tenant sessions add rows with session.add(), not insert()")


@event.listens_for(ScopedSession, "before_flush")
def _stamp_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    org = org_of(session)
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if org is None:
            if obj.org_id is None:
                raise UnscopedQueryError(f"{type(obj).__name__} added without an org_id")
        elif obj.org_id is None:
            obj.org_id = org
        elif obj.org_id != org:
            raise UnscopedQueryError(f"{type(obj).__name__} belongs to another organization")
    for obj in session.dirty:
        if isinstance(obj, TenantOwned) and org is not None and obj.org_id != org:
            raise UnscopedQueryError(f"{type(obj).__name__} moved to another organization")
