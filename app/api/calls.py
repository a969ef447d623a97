"""`GET /api/calls/live`: the organization's calls in progress, across all ingress replicas."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.deps import CurrentPrincipal
from app.api.errors import responses
from app.call_state.store import CallStateStore


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
async def live_calls(request: Request, principal: CurrentPrincipal) -> LiveCallList:
    """What the dashboard's live view polls."""
    store: CallStateStore = request.app.state.calls
    calls = await store.live(str(principal.org_id))
    return LiveCallList(items=[LiveCallOut.model_validate(c, from_attributes=True) for c in calls])
