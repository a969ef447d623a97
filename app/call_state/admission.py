"""Which media stream may carry which call.

A media stream's `start` message is whatever its sender wrote: its `customParameters` could name
any org and agent, its callSid any call. So the incoming-call webhook - the request Twilio
signed - decides everything about the call and files it as a `StreamGrant` under a random,
single-use token that only the TwiML it returns carries. A stream is admitted when it brings an
unused token for its own callSid and account; org, agent and numbers then come from the grant.
Admission also claims the call sid (a sid is live at most once) under the org's cap on
concurrent calls, in one atomic step of the shared store, so it holds across replicas.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from app.call_state.store import CallStateStore, LiveCall, StreamGrant
from app.calls.session import AdmittedCall, Agents, StreamRefused
from app.telephony.messages import StartEvent

TOKEN_PARAMETER = "streamToken"


def replica_id() -> str:
    """Names this process among the ingress replicas."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _token_id(token: str) -> str:
    # Only a hash is stored: whoever reads the store cannot open a stream with what they read.
    return hashlib.sha256(token.encode()).hexdigest()


class CallAdmission:
    """Issues stream tokens at the webhook and admits streams that bring one."""

    def __init__(
        self,
        store: CallStateStore,
        agents: Agents,
        *,
        replica: str | None = None,
        token_ttl_s: float = 60.0,
        max_calls_per_org: int = 10,
        org_cap: Callable[[str], Awaitable[int | None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._agents = agents
        self._replica = replica or replica_id()
        self._token_ttl_s = token_ttl_s
        self._max_calls_per_org = max_calls_per_org
        self._org_cap = org_cap
        self._clock = clock

    async def issue(self, grant: StreamGrant) -> str:
        """A fresh token for the one stream that may carry `grant`'s call."""
        token = secrets.token_urlsafe(32)
        await self._store.grant(_token_id(token), grant, self._token_ttl_s)
        return token

    async def cap(self, org_id: str) -> int:
        """How many calls `org_id` may have at once."""
        own = await self._org_cap(org_id) if self._org_cap is not None else None
        return min(own, self._max_calls_per_org) if own is not None else self._max_calls_per_org

    async def at_capacity(self, org_id: str) -> bool:
        """The org has as many live calls as it may (the webhook's polite check; `admit` is
        the binding one)."""
        return len(await self._store.live(org_id)) >= await self.cap(org_id)

    async def admit(self, start: StartEvent) -> AdmittedCall:
        """Let the stream in, or raise StreamRefused before any agent, tool or transcript runs."""
        token = start.start.customParameters.get(TOKEN_PARAMETER, "")
        if not token:
            raise StreamRefused("no_token", "the stream carries no stream token")
        grant = await self._store.redeem(_token_id(token))
        if grant is None:
            raise StreamRefused("bad_token", "unknown, expired or already used stream token")
        if (grant.call_sid, grant.account_sid) != (start.start.callSid, start.start.accountSid):
            raise StreamRefused("wrong_call", "the stream token belongs to another call")
        agent = await self._agents.by_id(grant.org_id, grant.agent_id)
        if agent is None:
            raise StreamRefused("no_agent", "the call's agent no longer answers")
        live = LiveCall(
            call_sid=grant.call_sid,
            org_id=grant.org_id,
            agent_id=grant.agent_id,
            replica=self._replica,
            from_number=grant.from_number,
            to_number=grant.to_number,
            started_at=self._clock(),
        )
        claim = await self._store.claim(live, await self.cap(grant.org_id))
        if claim == "live":
            raise StreamRefused("duplicate", "this call already has a live stream")
        if claim == "busy":
            raise StreamRefused("busy", "the organization is at its limit of concurrent calls")
        return AdmittedCall(
            call_sid=grant.call_sid,
            org_id=grant.org_id,
            agent=agent,
            from_number=grant.from_number,
            to_number=grant.to_number,
        )

    async def release(self, call: AdmittedCall) -> None:
        """The call is over: its sid is no longer live."""
        await self._store.remove(call.call_sid, call.org_id)
