"""What the resource routes share: a commit whose broken unique rule is a 409, a body's reference
to another row that must be the organization's, and the empty 204 of a delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import get_or_404
from app.api.errors import FieldValidationError


async def commit_or_409(session: AsyncSession, conflict: str) -> None:
    """Commit; a unique constraint broken (a name or number already taken) is a 409 saying
    `conflict`, and the session is usable again."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(409, conflict) from exc


async def check_reference(
    session: AsyncSession, model: type[Any], row_id: uuid.UUID | None, *, field: str, what: str
) -> None:
    """A row the body names by id (none is fine) must be one of the organization's, else a 422
    on that field: another org's id reads as no such row."""
    if row_id is None:
        return
    if await session.scalar(select(model.id).where(model.id == row_id)) is None:
        raise FieldValidationError(field, f"no {what} {row_id} in your organization")


async def delete_or_404(
    session: AsyncSession, model: type[Any], row_id: uuid.UUID, what: str
) -> Response:
    """Delete the organization's row with `row_id` (404 when there is none): 204."""
    await session.delete(await get_or_404(session, model, row_id, what))
    await session.commit()
    return no_content()


def no_content() -> Response:
    """The empty answer of a delete or revoke."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
