"""What one web process shares: the database, the authenticator and the call hub.

Built the same way by the ingress replica (engines behind Ray handles) and by `velox dev` and
the tests (engines in process), so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from app.auth.clerk import ClerkVerifier
from app.auth.principal import Authenticator
from app.calls.directory import AgentDirectory
from app.calls.hub import CallHub
from app.calls.live import LiveCallRecorder
from app.calls.recorder import FanoutRecorder
from app.calls.session import Engines
from app.calls.state import CallStateStore, make_call_state
from app.calls.transcripts import DatabaseCallRecorder
from app.db.database import Database
from app.db.setup import open_database
from app.observability.metrics import Metrics
from app.settings import Settings


@dataclass(slots=True)
class Services:
    """The long-lived objects behind the routes."""

    db: Database
    auth: Authenticator
    hub: CallHub
    calls: CallStateStore

    def attach(self, api: FastAPI) -> None:
        """Make the services reachable from the routes (`request.app.state`)."""
        api.state.db = self.db
        api.state.auth = self.auth
        api.state.hub = self.hub
        api.state.calls = self.calls

    async def close(self) -> None:
        """Release the database pool and the call-state connection."""
        await self.calls.close()
        await self.db.close()


def clerk_verifier(settings: Settings) -> ClerkVerifier | None:
    """Clerk sign-in, when CLERK_SECRET_KEY is set."""
    if settings.clerk_secret_key is None:
        return None
    return ClerkVerifier(
        secret_key=settings.clerk_secret_key.get_secret_value(),
        api_url=settings.clerk_api_url,
        issuer=settings.clerk_issuer,
        authorized_parties=settings.clerk_parties,
    )


async def build_services(settings: Settings, engines: Engines, metrics: Metrics) -> Services:
    """Open (and migrate) the database and assemble the hub around `engines`."""
    db = await open_database(settings)
    calls = make_call_state(settings.redis_url)
    hub = CallHub(
        engines=engines,
        settings=settings,
        metrics=metrics,
        recorder=FanoutRecorder(DatabaseCallRecorder(db, settings), LiveCallRecorder(calls)),
        directory=AgentDirectory(db, settings),
    )
    await hub.prewarm()
    return Services(db=db, auth=Authenticator(db, clerk_verifier(settings)), hub=hub, calls=calls)
