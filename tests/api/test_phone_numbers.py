"""`/api/phone-numbers`: attach numbers to agents; a number belongs to one organization, and
only to one whose number it is: the operator's Twilio account must have it (asked through the
Twilio SDK, against a local fake Twilio), or the operator assigns it with `velox numbers assign`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result
from pydantic import SecretStr
from typer.testing import CliRunner

from app.settings import Settings, get_settings
from cli import cli
from tests.api.conftest import Tenant, agent_body, assert_error
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.integration


async def test_attach_route_release(org_a: Tenant) -> None:
    client = org_a.client
    front = (await client.post("/api/agents", json=agent_body("Front"))).json()
    back = (await client.post("/api/agents", json=agent_body("Back"))).json()
    created = await client.post(
        "/api/phone-numbers", json={"number": "+14155550101", "agent_id": front["id"]}
    )
    assert created.status_code == 201, created.text
    number = created.json()
    assert (await client.get(f"/api/agents/{front['id']}")).json()["phone_numbers"] == [
        "+14155550101"
    ]
    moved = await client.patch(f"/api/phone-numbers/{number['id']}", json={"agent_id": back["id"]})
    assert moved.json()["agent_id"] == back["id"]
    assert (await client.get(f"/api/agents/{front['id']}")).json()["phone_numbers"] == []
    listed = await client.get("/api/phone-numbers")
    assert [n["number"] for n in listed.json()["items"]] == ["+14155550101"]
    assert (await client.delete(f"/api/phone-numbers/{number['id']}")).status_code == 204
    assert (await client.get("/api/phone-numbers")).json()["items"] == []


async def test_deleting_an_agent_unassigns_its_numbers(org_a: Tenant) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    number = (
        await org_a.client.post(
            "/api/phone-numbers", json={"number": "+14155550102", "agent_id": agent["id"]}
        )
    ).json()
    await org_a.client.delete(f"/api/agents/{agent['id']}")
    assert (await org_a.client.get(f"/api/phone-numbers/{number['id']}")).json()["agent_id"] is None


async def test_a_number_already_attached_is_409(org_a: Tenant, org_b: Tenant) -> None:
    body = {"number": "+14155550103"}
    assert (await org_a.client.post("/api/phone-numbers", json=body)).status_code == 201
    for client in (org_a.client, org_b.client):
        error = assert_error(await client.post("/api/phone-numbers", json=body), 409, "conflict")
        assert "+14155550103" in str(error["message"])


@pytest.mark.parametrize("number", ["4155550104", "+0155550104", "+1 415 555", "tel:+1415"])
async def test_numbers_must_be_e164(org_a: Tenant, number: str) -> None:
    error = assert_error(
        await org_a.client.post("/api/phone-numbers", json={"number": number}),
        422,
        "invalid_request",
    )
    assert error["fields"][0]["field"] == "body.number"  # type: ignore[index]


async def test_agent_must_be_the_orgs_own(org_a: Tenant, org_b: Tenant) -> None:
    theirs = (await org_b.client.post("/api/agents", json=agent_body())).json()
    error = assert_error(
        await org_a.client.post(
            "/api/phone-numbers", json={"number": "+14155550105", "agent_id": theirs["id"]}
        ),
        422,
        "invalid_request",
    )
    assert error["fields"][0]["field"] == "body.agent_id"  # type: ignore[index]


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        for number in ("+14155550170", "+14155550171", "+14155550175"):
            fake.add_number(number)
        yield fake


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes; `with_twilio` adds the fake Twilio account's credentials."""
    return {}


@pytest.fixture
def settings(settings: Settings, overrides: dict[str, Any], twilio: FakeTwilio) -> Settings:
    values = dict(overrides)
    if values.pop("with_twilio", False):
        values.update(
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=SecretStr(values.pop("auth_token", twilio.auth_token)),
            twilio_api_url=twilio.url,
            velox_public_url="https://velox.example",  # a signed server names its URL
        )
    return settings.replace(**values)


TWILIO = {"with_twilio": True}


@pytest.mark.parametrize(
    ("overrides", "number"),
    [(TWILIO, "+14155550170"), ({**TWILIO, "velox_host": "0.0.0.0"}, "+14155550175")],
    ids=["loopback", "public"],
)
async def test_a_number_of_the_twilio_account_can_be_claimed(
    org_a: Tenant, twilio: FakeTwilio, number: str
) -> None:
    created = await org_a.client.post("/api/phone-numbers", json={"number": number})

    assert created.status_code == 201, created.text
    lookup = twilio.requests[-1]
    assert lookup.path == f"/2010-04-01/Accounts/{twilio.account_sid}/IncomingPhoneNumbers.json"
    assert lookup.query["PhoneNumber"] == number
    assert (lookup.username, lookup.password) == (twilio.account_sid, twilio.auth_token)


@pytest.mark.parametrize("overrides", [TWILIO])
@pytest.mark.parametrize(
    "number",
    [
        "+14155550179",  # not on the account
        "+1415555017",  # a prefix of the account's numbers: Twilio's filter matches it
    ],
    ids=["not-owned", "partial-match"],
)
async def test_a_number_outside_the_twilio_account_is_refused(org_a: Tenant, number: str) -> None:
    error = assert_error(
        await org_a.client.post("/api/phone-numbers", json={"number": number}),
        422,
        "invalid_request",
    )
    assert error["fields"][0]["field"] == "body.number"  # type: ignore[index]
    assert "Twilio account" in str(error["message"])
    assert (await org_a.client.get("/api/phone-numbers")).json()["items"] == []


@pytest.mark.parametrize("overrides", [{**TWILIO, "auth_token": "wrong"}])
async def test_twilio_refusing_the_lookup_is_503(org_a: Tenant) -> None:
    error = assert_error(
        await org_a.client.post("/api/phone-numbers", json={"number": "+14155550171"}),
        503,
        "unavailable",
    )
    assert "Twilio" in str(error["message"])


@pytest.mark.parametrize("overrides", [{"velox_host": "0.0.0.0"}])
async def test_without_twilio_credentials_a_public_server_sends_the_operator_to_the_cli(
    org_a: Tenant,
) -> None:
    error = assert_error(
        await org_a.client.post("/api/phone-numbers", json={"number": "+14155550172"}),
        403,
        "forbidden",
    )
    assert "velox numbers assign" in str(error["message"])
    assert (await org_a.client.get("/api/phone-numbers")).json()["items"] == []


@pytest.mark.parametrize("overrides", [{"velox_host": "0.0.0.0"}])
async def test_the_operator_assigns_numbers_with_the_cli(
    org_a: Tenant, org_b: Tenant, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def velox(*args: str) -> Result:
        # The command runs its own event loop: off this test's loop, as from a shell.
        return runner.invoke(cli, ["numbers", "assign", *args])

    try:
        done = await asyncio.to_thread(
            velox, "+14155550173", "--org", str(org_a.org_id), "--agent", agent["id"]
        )
        assert done.exit_code == 0, done.output
        taken = await asyncio.to_thread(velox, "+14155550173", "--org", str(org_b.org_id))
        unknown_org = await asyncio.to_thread(velox, "+14155550174", "--org", str(uuid.uuid4()))
        their_agent = await asyncio.to_thread(
            velox, "+14155550174", "--org", str(org_b.org_id), "--agent", agent["id"]
        )
        not_e164 = await asyncio.to_thread(velox, "4155550174", "--org", str(org_a.org_id))
    finally:
        get_settings.cache_clear()

    [number] = (await org_a.client.get("/api/phone-numbers")).json()["items"]
    assert (number["number"], number["agent_id"]) == ("+14155550173", agent["id"])
    assert taken.exit_code == 1 and "release it there first" in taken.output
    assert unknown_org.exit_code == 1 and "no organization" in unknown_org.output
    assert their_agent.exit_code == 1 and "no agent" in their_agent.output
    assert not_e164.exit_code == 1 and "E.164" in not_e164.output
    assert (await org_b.client.get("/api/phone-numbers")).json()["items"] == []
