"""Transfer and hang-up through the real `twilio` SDK, against a local fake of Twilio's REST API."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from app.settings import Settings
from app.telephony.calls_api import TwilioCalls, TwilioUnavailable
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.integration

CALL_SID = "CA" + "1" * 32


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as twilio:
        twilio.add_call(CALL_SID, "+15550100", "+15550199")
        yield twilio


@pytest.fixture
async def calls(fake: FakeTwilio) -> AsyncIterator[TwilioCalls]:
    client = TwilioCalls(account_sid=fake.account_sid, auth_token=fake.auth_token, api_url=fake.url)
    yield client
    await client.aclose()


def settings(
    *,
    twilio_account_sid: str | None = None,
    twilio_auth_token: SecretStr | None = None,
    twilio_api_url: str | None = None,
) -> Settings:
    """Only what is given here: no .env file, and explicit None beats any TWILIO_* env var."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        twilio_account_sid=twilio_account_sid,
        twilio_auth_token=twilio_auth_token,
        twilio_api_url=twilio_api_url,
    )


async def test_transfer_says_then_dials(fake: FakeTwilio, calls: TwilioCalls) -> None:
    await calls.transfer(
        CALL_SID,
        to_number="+15557654321",
        announcement="Connecting you to a person now.",
        caller_id="+15550199",
    )

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Calls/{CALL_SID}.json"
    assert (request.username, request.password) == (fake.account_sid, fake.auth_token)
    assert set(request.form) == {"Twiml"}
    root = ET.fromstring(fake.last_twiml(CALL_SID))
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Dial"]
    say, dial = root
    assert say.text == "Connecting you to a person now."
    assert (dial.text or "").strip() == "+15557654321"
    assert dial.get("callerId") == "+15550199"
    assert fake.calls[CALL_SID]["status"] == "in-progress"  # redirected, not ended


async def test_transfer_without_announcement_only_dials(
    fake: FakeTwilio, calls: TwilioCalls
) -> None:
    await calls.transfer(CALL_SID, to_number="+15557654321")

    root = ET.fromstring(fake.last_twiml(CALL_SID))
    assert [child.tag for child in root] == ["Dial"]
    assert root[0].get("callerId") is None


async def test_transfer_escapes_announcement(fake: FakeTwilio, calls: TwilioCalls) -> None:
    await calls.transfer(CALL_SID, to_number="+15557654321", announcement="Rosa's <Bakery> & co")

    say = ET.fromstring(fake.last_twiml(CALL_SID)).find("Say")
    assert say is not None and say.text == "Rosa's <Bakery> & co"


async def test_transfer_needs_a_number(fake: FakeTwilio, calls: TwilioCalls) -> None:
    with pytest.raises(ValueError, match="TRANSFER_NUMBER"):
        await calls.transfer(CALL_SID, to_number=" ")
    assert fake.requests == []


async def test_hang_up_completes_the_call(fake: FakeTwilio, calls: TwilioCalls) -> None:
    await calls.hang_up(CALL_SID)

    [request] = fake.requests
    assert request.form == {"Status": "completed"}
    assert fake.calls[CALL_SID]["status"] == "completed"
    assert CALL_SID not in fake.twiml


async def test_unknown_call_is_20404(fake: FakeTwilio, calls: TwilioCalls) -> None:
    with pytest.raises(TwilioUnavailable, match="20404") as caught:
        await calls.transfer("CA" + "f" * 32, to_number="+15557654321")
    assert "CA" + "f" * 32 in str(caught.value)


async def test_ended_call_cannot_be_transferred(fake: FakeTwilio, calls: TwilioCalls) -> None:
    await calls.hang_up(CALL_SID)
    with pytest.raises(TwilioUnavailable, match="21220"):
        await calls.transfer(CALL_SID, to_number="+15557654321")


async def test_wrong_token_is_refused(fake: FakeTwilio) -> None:
    client = TwilioCalls(account_sid=fake.account_sid, auth_token="wrong", api_url=fake.url)
    try:
        with pytest.raises(TwilioUnavailable, match="20003") as caught:
            await client.hang_up(CALL_SID)
    finally:
        await client.aclose()
    assert "wrong" not in str(caught.value)  # the token is never echoed
    assert fake.calls[CALL_SID]["status"] == "in-progress"


async def test_slow_twilio_times_out_without_blocking_the_loop(fake: FakeTwilio) -> None:
    # Twilio answers only after 2 s: a failure within 0.3 s can only be the configured deadline
    # (left at the 10 s default, the late answer would arrive and hang_up would succeed).
    fake.delay_s = 2.0
    client = TwilioCalls(
        account_sid=fake.account_sid, auth_token=fake.auth_token, api_url=fake.url, timeout_s=0.3
    )
    ticks_while_held = 0

    async def tick() -> None:
        nonlocal ticks_while_held
        while True:
            await asyncio.sleep(0.01)
            if fake.requests:  # the request reached Twilio, which is holding it
                ticks_while_held += 1

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(TwilioUnavailable, match="did not answer within 0.3 s"):
            await client.hang_up(CALL_SID)
    finally:
        ticker.cancel()
        await client.aclose()
    assert len(fake.requests) == 1  # no retry
    assert fake.calls[CALL_SID]["status"] == "in-progress"
    assert ticks_while_held > 0  # the loop kept running while the request waited


async def test_unreachable_twilio_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TwilioCalls(
        account_sid="AC" + "0" * 32, auth_token="token", api_url=f"http://127.0.0.1:{port}"
    )
    try:
        with pytest.raises(TwilioUnavailable, match="could not reach Twilio"):
            await client.hang_up(CALL_SID)
    finally:
        await client.aclose()


async def test_client_reopens_after_aclose(fake: FakeTwilio, calls: TwilioCalls) -> None:
    await calls.transfer(CALL_SID, to_number="+15557654321")
    await calls.aclose()
    await calls.hang_up(CALL_SID)
    assert [r.form.keys() for r in fake.requests] == [{"Twiml"}, {"Status"}]


def test_from_settings_needs_sid_and_token() -> None:
    assert TwilioCalls.from_settings(settings()) is None
    assert TwilioCalls.from_settings(settings(twilio_account_sid="AC" + "0" * 32)) is None
    assert TwilioCalls.from_settings(settings(twilio_auth_token=SecretStr("token"))) is None


async def test_from_settings_reaches_the_configured_url(fake: FakeTwilio) -> None:
    client = TwilioCalls.from_settings(
        settings(
            twilio_account_sid=fake.account_sid,
            twilio_auth_token=SecretStr(fake.auth_token),
            twilio_api_url=fake.url + "/",
        )
    )
    assert client is not None
    try:
        await client.hang_up(CALL_SID)
    finally:
        await client.aclose()
    assert fake.calls[CALL_SID]["status"] == "completed"


def test_fake_serves_the_call_resource_on_get(fake: FakeTwilio) -> None:
    path = f"/2010-04-01/Accounts/{fake.account_sid}/Calls/{CALL_SID}.json"
    credentials = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    request = urllib.request.Request(
        fake.url + path, headers={"Authorization": f"Basic {credentials}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.load(response)
    assert body["sid"] == CALL_SID
    assert (body["from"], body["to"], body["status"]) == ("+15550100", "+15550199", "in-progress")

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(fake.url + path, timeout=5)
    assert refused.value.code == 401
    assert json.load(refused.value)["code"] == 20003


async def test_twilio_env_vars_do_not_reroute(
    fake: FakeTwilio, calls: TwilioCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would rewrite the host for TWILIO_EDGE/TWILIO_REGION; only Settings configures us.
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    await calls.hang_up(CALL_SID)
    assert fake.calls[CALL_SID]["status"] == "completed"
