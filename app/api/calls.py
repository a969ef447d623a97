"""`GET /api/calls/live`: the organization's calls in progress, across all ingress replicas."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import CallStateDep, CurrentPrincipal
from app.api.errors import responses


class LiveCallOut(BaseModel):
    """A call in progress."""

    call_sid: str
    agent_id: str
    from_number: str
    to_number: str
    started_at: float
    status: str
    turns: int
    last_caller_text: str
    last_agent_text: str


class LiveCallList(BaseModel):
    """Newest first."""

    items: list[LiveCallOut]


router = APIRouter(prefix="/api/calls", tags=["conversations"], responses=responses(401))


@router.get("/live", summary="Calls in progress")
async def live_calls(principal: CurrentPrincipal, store: CallStateDep) -> LiveCallList:
    """What the dashboard's live view polls."""
    calls = await store.live(str(principal.org_id))
    return LiveCallList(items=[LiveCallOut.model_validate(c, from_attributes=True) for c in calls])
