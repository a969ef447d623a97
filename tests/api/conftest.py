"""The API over real Postgres and Redis, with a local Clerk (JWKS) server; engines are fakes
because no route here runs a model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.auth.api_keys import mint_api_key
from app.db.database import Database
from app.db.models import ApiKey, Organization
from app.engines import Engines
from app.observability.metrics import Metrics
from app.rag.embedder import MiniLMEmbedder
from app.services import Services, build_services
from app.settings import Settings
from tests.fakes import FakeLLM, FakeSTT, FakeTTS
from tests.fakes.clerk_server import FakeClerk

DASHBOARD = "http://localhost:3000"


@pytest.fixture(scope="session")
def clerk() -> Iterator[FakeClerk]:
    with FakeClerk() as fake:
        yield fake


@pytest.fixture
def settings(postgres_url: str, redis_url: str, clerk: FakeClerk, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=postgres_url,
        database_pool_size=4,
        redis_url=redis_url,
        velox_data_dir=tmp_path,
        velox_demo_agent=False,
        twilio_auth_token=None,
        clerk_secret_key=clerk.secret_key,
        clerk_api_url=clerk.url,
        clerk_issuer=clerk.issuer,
        clerk_authorized_parties=DASHBOARD,
        # Every test client is 127.0.0.1 and Redis outlives a test: the limits would carry one
        # test's failed sign-ins into the next. Their own tests set strict limits.
        rate_limit_auth_failures="1000000/minute",
        rate_limit_playground_turns="1000000/minute",
    )


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """The real local embedder: knowledge-base tests search with real vectors."""
    return MiniLMEmbedder()


@pytest.fixture
async def services(settings: Settings, embedder: MiniLMEmbedder) -> AsyncIterator[Services]:
    engines = Engines(stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    built = await build_services(settings, engines, Metrics(), embedder)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def app(services: Services) -> FastAPI:
    api = create_app()
    services.attach(api)
    return api


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


@dataclass
class Tenant:
    """An organization and a client holding one of its API keys."""

    org_id: uuid.UUID
    key: str
    client: httpx.AsyncClient


async def make_tenant(app: FastAPI, db: Database, name: str) -> Tenant:
    minted = mint_api_key()
    async with db.system() as session:
        org = Organization(name=name)
        session.add(org)
        await session.flush()
        session.add(
            ApiKey(org_id=org.id, name="test", prefix=minted.prefix, key_hash=minted.key_hash)
        )
        await session.commit()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {minted.secret}"},
    )
    return Tenant(org_id=org.id, key=minted.secret, client=client)


@pytest.fixture
async def org_a(app: FastAPI, services: Services) -> AsyncIterator[Tenant]:
    tenant = await make_tenant(app, services.db, "Org A")
    async with tenant.client:
        yield tenant


@pytest.fixture
async def org_b(app: FastAPI, services: Services) -> AsyncIterator[Tenant]:
    tenant = await make_tenant(app, services.db, "Org B")
    async with tenant.client:
        yield tenant


def agent_body(name: str = "Front desk", **overrides: object) -> dict[str, object]:
    return {
        "name": name,
        "system_prompt": "You answer the phone for Acme. Be brief.",
        "greeting": "Hi, Acme here. How can I help?",
        **overrides,
    }


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The response is our JSON error envelope with this status and code."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error  # type: ignore[no-any-return]
