"""Schemathesis over /openapi.json against the real app (real Postgres, real Redis, served by
uvicorn): generated requests — valid and invalid, with an org's key — must never get a 5xx,
and every response must match the schema the route documents.

Bounded for CI by FUZZ_EXAMPLES per operation; raise it locally to fuzz harder, e.g.
`FUZZ_EXAMPLES=200 pytest tests/api/test_openapi_fuzz.py`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.app import create_app
from app.auth.api_keys import mint_api_key
from app.db.models import ApiKey, Organization
from app.engines import Engines
from app.observability.metrics import Metrics
from app.rag.embedder import MiniLMEmbedder
from app.services import build_services
from app.settings import Settings
from harness.serving import serving
from tests.fakes import FakeLLM, FakeSTT, FakeTTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzzed_api(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app served for real, its services opened in the server's own loop, one org's key."""
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=postgres_url,
        database_pool_size=4,
        redis_url=redis_url,
        velox_data_dir=tmp_path_factory.mktemp("fuzz"),
        velox_demo_agent=False,
        twilio_auth_token=None,
        # Fuzzing is not an attack on the limits: they have their own tests.
        rate_limit_auth_failures="1000000/minute",
        rate_limit_playground_turns="1000000/minute",
    )

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        engines = Engines(stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
        services = await build_services(config, engines, Metrics(), MiniLMEmbedder())
        services.attach(api)
        minted = mint_api_key()
        async with services.db.system() as session:
            org = Organization(name="Fuzzed")
            session.add(org)
            await session.flush()
            session.add(
                ApiKey(org_id=org.id, name="fuzz", prefix=minted.prefix, key_hash=minted.key_hash)
            )
            await session.commit()
        KEY["secret"] = minted.secret
        try:
            yield
        finally:
            await services.close()

    api = create_app()
    api.router.lifespan_context = lifespan
    with serving(api, lifespan=True, start_timeout_s=120) as url:
        yield url


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_request_gets_a_5xx_or_a_response_off_its_schema(fuzzed_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    headers = {"Authorization": f"Bearer {KEY['secret']}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as failure:  # every operation is fuzzed; all failures reported at once
            failures.append(f"{operation.label}: {failure}")
    assert operations > 20
    assert not failures, "\n\n".join(failures)
